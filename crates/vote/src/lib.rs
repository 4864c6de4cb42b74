//! Guildhall vote engine: a pure library (no database, no network) and its command-line tool.
//!
//! - [`ballot`]: BLT, PrefLib `.soi`/`.toi` and CSV readers and writers (malformed ballots
//!   reported by line and counted as invalid);
//! - [`stv`]: Scottish STV (SSI 2007/42 rules 45–52), WIGM and Meek STV with
//!   stage-by-stage reports;
//! - [`methods`]: Schulze, instant runoff, approval, plurality;
//! - [`stakeholder`]: boards with reserved seats per stakeholder class plus open seats;
//! - [`delegate`]: liquid delegation with LiquidFeedback semantics.

pub mod ballot;
pub mod cli;
pub mod delegate;
pub mod methods;
pub mod stakeholder;
pub mod stv;

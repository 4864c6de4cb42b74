#!/bin/sh
# Creates bench/vote/.venv with the peer implementations used by compare.py.
set -e
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q votekit==3.5.0 STVPoll==0.5.6 pref_voting==1.18.2

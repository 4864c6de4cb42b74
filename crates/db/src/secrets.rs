//! Stored credentials (instance API tokens and the like), encrypted at rest.
//!
//! Every credential lives in the `secrets` table under a name (`instance:42:token`), sealed with
//! XChaCha20-Poly1305 under a 256-bit key; the row records the key's id (the first 16 hex digits
//! of SHA-256 of the key) and a random 192-bit nonce; the name and key id are authenticated as
//! associated data, so a ciphertext cannot be moved to another name.
//!
//! A [`Keyring`] holds the current key (used to seal) and older keys (still used to open).
//! Rotation: make a new key current, keep the old one, and run [`Db::reseal_secrets`] (the
//! `guildhall admin rotate-key` command does all three); then the old key can be dropped.
//!
//! Keys come from the configuration (`GUILDHALL_SECRET_KEY`: 64 hex digits, several separated by
//! commas, current first) or from a key file created on first run with mode 0600 (one key per
//! line, current first). Keys and plaintexts never appear in `Debug` output. A keyring read
//! from a key file follows it: when the file changes (`admin rotate-key` rewrote it), the next
//! seal or open in every running process reads it again, so a rotation needs no restart. Keys
//! from the configuration cannot change while a process runs: restart each process with the
//! new value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use guildhall_core::Timestamp;

use crate::{on_pool, on_tx, Db, DbError, Tx};

/// Errors of keys and sealing.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A key is not 64 hex digits (the position in the list is given, never the text).
    #[error("secret key #{index} ({origin}) is not 64 hex digits")]
    BadKey {
        /// Where the key came from (file path or setting name).
        origin: String,
        /// Its position in the list, from 1.
        index: usize,
    },
    /// No key was given.
    #[error("no secret key ({0})")]
    NoKey(String),
    /// The key file could not be read or written.
    #[error("secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored secret was sealed with a key that is not in the keyring.
    #[error("secret {name:?} was sealed with key {key_id}, which is not configured")]
    UnknownKey {
        /// The secret's name.
        name: String,
        /// The key id it needs.
        key_id: String,
    },
    /// Authentication failed: wrong key, or the stored bytes were altered.
    #[error("secret {0:?} cannot be decrypted (wrong key or altered data)")]
    Decrypt(String),
    /// Encryption failed (cannot happen with valid keys).
    #[error("encrypting secret {0:?} failed")]
    Encrypt(String),
}

/// One 256-bit key.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    bytes: [u8; 32],
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretKey::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        let id = crate::sha256_hex(&bytes)[..16].to_owned();
        SecretKey { id, bytes }
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<SecretKey> {
        let v = hex::decode(s.trim()).ok()?;
        let bytes: [u8; 32] = v.try_into().ok()?;
        Some(SecretKey::from_bytes(bytes))
    }

    /// The key as 64 hex digits (for writing it to a file or showing it once).
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// The key's id (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.id)
    }
}

/// A plaintext secret. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> SecretValue {
        SecretValue(bytes.into())
    }

    /// The bytes, for use.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as UTF-8 text, if they are.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The current key and older ones. Clones share one state: when a keyring read from a key
/// file reloads it, every clone sees the new keys.
#[derive(Debug, Clone)]
pub struct Keyring {
    loaded: Arc<RwLock<Arc<Loaded>>>,
    /// The key file it follows, if it came from one.
    file: Option<Arc<PathBuf>>,
}

/// The keys as last read, and the key file's stamp then.
#[derive(Debug)]
struct Loaded {
    keys: Vec<SecretKey>,
    stamp: Option<FileStamp>,
}

/// What tells that a key file changed: its modification time (coarse: two writes in one
/// clock tick can share it), length, and inode (a rewrite renames a new file into place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
        })
    }
}

impl Keyring {
    /// A keyring whose first key is current.
    pub fn new(current: SecretKey, older: Vec<SecretKey>) -> Keyring {
        let mut keys = vec![current];
        keys.extend(older);
        Keyring::of(keys, None, None)
    }

    fn of(keys: Vec<SecretKey>, file: Option<&Path>, stamp: Option<FileStamp>) -> Keyring {
        Keyring {
            loaded: Arc::new(RwLock::new(Arc::new(Loaded { keys, stamp }))),
            file: file.map(|p| Arc::new(p.to_path_buf())),
        }
    }

    /// The keys now: for a keyring read from a key file, re-read when the file changed (or
    /// always, with `force`). A file that cannot be read or parsed leaves the keys as they
    /// were (it is tried again next time).
    fn loaded(&self, force: bool) -> Arc<Loaded> {
        let now = self
            .loaded
            .read()
            .map(|l| Arc::clone(&l))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()));
        let Some(path) = &self.file else {
            return now;
        };
        let stamp = FileStamp::of(path);
        if !force && stamp == now.stamp {
            return now;
        }
        let Ok(text) = std::fs::read_to_string(path.as_path()) else {
            return now;
        };
        let Ok(keys) = parse_keys(&text, &path.display().to_string()) else {
            return now;
        };
        let fresh = Arc::new(Loaded { keys, stamp });
        match self.loaded.write() {
            Ok(mut l) => *l = Arc::clone(&fresh),
            Err(p) => *p.into_inner() = Arc::clone(&fresh),
        }
        fresh
    }

    /// Parses keys separated by commas or new lines, current first (`origin` names where they
    /// came from, for errors). Blank lines and `#` comments are ignored.
    pub fn parse(text: &str, origin: &str) -> Result<Keyring, SecretError> {
        Ok(Keyring::of(parse_keys(text, origin)?, None, None))
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a new key if it does not
    /// exist. The keyring follows the file from then on (see the module documentation).
    pub fn load_or_create_file(path: &Path) -> Result<Keyring, SecretError> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let stamp = FileStamp::of(path);
                let keys = parse_keys(&text, &origin)?;
                Ok(Keyring::of(keys, Some(path), stamp))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Keyring::new(SecretKey::generate(), Vec::new());
                ring.write_file(path, true)?;
                Ok(Keyring::of(ring.keys(), Some(path), FileStamp::of(path)))
            }
            Err(source) => Err(SecretError::KeyFile {
                path: origin,
                source,
            }),
        }
    }

    /// Writes the keys to `path` (mode 0600), current first. With `create_new`, fails if the
    /// file exists. Otherwise replaces it atomically (write to a temporary file, rename).
    pub fn write_file(&self, path: &Path, create_new: bool) -> Result<(), SecretError> {
        use std::io::Write;
        let err = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let mut text = String::from(
            "# Guildhall secret keys: the first is current, the others are older keys still\n\
             # used to read secrets sealed before a rotation. Keep this file private.\n",
        );
        for k in self.keys() {
            text.push_str(&k.to_hex());
            text.push('\n');
        }
        let target = if create_new {
            path.to_path_buf()
        } else {
            let mut t = path.as_os_str().to_owned();
            t.push(".tmp");
            t.into()
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true);
        if create_new {
            opts.create_new(true);
        } else {
            opts.create(true).truncate(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&target).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        if !create_new {
            std::fs::rename(&target, path).map_err(err)?;
        }
        Ok(())
    }

    /// The current key.
    pub fn current(&self) -> SecretKey {
        self.loaded(false).keys[0].clone()
    }

    /// Every key, current first.
    pub fn keys(&self) -> Vec<SecretKey> {
        self.loaded(false).keys.clone()
    }

    /// A new keyring (following no file) with a fresh current key and all these keys as older
    /// ones.
    pub fn rotated(&self) -> Keyring {
        Keyring::new(SecretKey::generate(), self.keys())
    }

    /// Seals `value` under the current key for `name`: (key id, nonce, ciphertext).
    pub fn seal(
        &self,
        name: &str,
        value: &SecretValue,
    ) -> Result<(String, Vec<u8>, Vec<u8>), SecretError> {
        use rand::RngCore;
        let key = self.current();
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new((&key.bytes).into());
        let aad = format!("{name}\0{}", key.id);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.expose(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Encrypt(name.to_owned()))?;
        Ok((key.id.clone(), nonce.to_vec(), ct))
    }

    /// Opens what [`Keyring::seal`] sealed.
    pub fn open(
        &self,
        name: &str,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<SecretValue, SecretError> {
        // A key this process has not seen may be in a key file rewritten since.
        let find = |l: &Loaded| l.keys.iter().find(|k| k.id == key_id).cloned();
        let key = find(&self.loaded(false))
            .or_else(|| find(&self.loaded(true)))
            .ok_or_else(|| SecretError::UnknownKey {
                name: name.to_owned(),
                key_id: key_id.to_owned(),
            })?;
        if nonce.len() != 24 {
            return Err(SecretError::Decrypt(name.to_owned()));
        }
        let cipher = XChaCha20Poly1305::new((&key.bytes).into());
        let aad = format!("{name}\0{key_id}");
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map(SecretValue)
            .map_err(|_| SecretError::Decrypt(name.to_owned()))
    }
}

/// Keys separated by commas or new lines, current first (see [`Keyring::parse`]).
fn parse_keys(text: &str, origin: &str) -> Result<Vec<SecretKey>, SecretError> {
    let mut keys = Vec::new();
    for (i, part) in text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        keys.push(
            SecretKey::from_hex(part).ok_or_else(|| SecretError::BadKey {
                origin: origin.to_owned(),
                index: i + 1,
            })?,
        );
    }
    if keys.is_empty() {
        return Err(SecretError::NoKey(origin.to_owned()));
    }
    Ok(keys)
}

/// [`Db::put_secret`] inside the caller's transaction.
pub(crate) async fn put_secret_in(
    tx: &mut Tx,
    keys: &Keyring,
    name: &str,
    value: &SecretValue,
) -> Result<(), DbError> {
    let (key_id, nonce, ct) = keys.seal(name, value)?;
    let now = Timestamp::now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO secrets (name, key_id, nonce, ciphertext, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO UPDATE SET \
         key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
         updated_at = excluded.updated_at")
        .bind(name).bind(&key_id).bind(&nonce).bind(&ct).bind(now.0)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// [`Db::delete_secret`] inside the caller's transaction.
pub(crate) async fn delete_secret_in(tx: &mut Tx, name: &str) -> Result<bool, DbError> {
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM secrets WHERE name = $1")
        .bind(name).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

impl Db {
    /// Stores (or replaces) the secret `name`, sealed under the keyring's current key.
    pub async fn put_secret(
        &self,
        keys: &Keyring,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        put_secret_in(&mut tx, keys, name, value).await?;
        tx.commit().await
    }

    /// Reads and decrypts the secret `name`.
    pub async fn get_secret(
        &self,
        keys: &Keyring,
        name: &str,
    ) -> Result<Option<SecretValue>, DbError> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT key_id, nonce, ciphertext FROM secrets WHERE name = $1")
            .bind(name).fetch_optional(p).await)?;
        match row {
            None => Ok(None),
            Some((key_id, nonce, ct)) => Ok(Some(keys.open(name, &key_id, &nonce, &ct)?)),
        }
    }

    /// Deletes the secret `name`. Returns whether it existed.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let existed = delete_secret_in(&mut tx, name).await?;
        tx.commit().await?;
        Ok(existed)
    }

    /// Re-encrypts every secret not sealed under the current key (after a rotation). Returns
    /// how many were re-encrypted. Fails without changing anything if one cannot be opened.
    pub async fn reseal_secrets(&self, keys: &Keyring) -> Result<u64, DbError> {
        let current = keys.current().id().to_owned();
        let mut tx = self.begin().await?;
        let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = crate::on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT name, key_id, nonce, ciphertext FROM secrets WHERE key_id <> $1 ORDER BY name")
            .bind(&current).fetch_all(c).await)?;
        let now = Timestamp::now();
        let mut n = 0;
        for (name, key_id, nonce, ct) in rows {
            let value = keys.open(&name, &key_id, &nonce, &ct)?;
            let (kid, nonce, ct) = keys.seal(&name, &value)?;
            crate::on_tx!(&mut tx, c => sqlx::query(
                "UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3, updated_at = $4 WHERE name = $5")
                .bind(&kid).bind(&nonce).bind(&ct).bind(now.0).bind(&name)
                .execute(c).await.map(|r| r.rows_affected()))?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db_test;

    db_test!(secrets_are_encrypted_and_need_the_key, |db| async move {
        let keys = Keyring::new(SecretKey::generate(), vec![]);
        let plain = "instance-token-0123456789-VERY-SECRET";
        db.put_secret(&keys, "instance:1:token", &SecretValue::new(plain))
            .await
            .unwrap();
        // The stored bytes are not the plaintext (nor contain it).
        let (nonce, ct): (Vec<u8>, Vec<u8>) = on_pool!(&db, p => sqlx::query_as(
            "SELECT nonce, ciphertext FROM secrets").fetch_one(p).await)
        .unwrap();
        assert_eq!(nonce.len(), 24);
        assert!(!ct
            .windows(10)
            .any(|w| plain.as_bytes().windows(10).any(|x| x == w)));
        let got = db
            .get_secret(&keys, "instance:1:token")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.expose_str(), Some(plain));
        assert!(!format!("{got:?}").contains("SECRET"));
        // Another key cannot decrypt it, even claiming the right key id.
        let other = Keyring::new(SecretKey::generate(), vec![]);
        assert!(matches!(
            db.get_secret(&other, "instance:1:token").await.unwrap_err(),
            DbError::Secret(SecretError::UnknownKey { .. })
        ));
        let (kid, _, _) = keys.seal("x", &SecretValue::new("y")).unwrap();
        let forged = Keyring::new(
            SecretKey {
                id: kid,
                bytes: other.current().bytes,
            },
            vec![],
        );
        assert!(matches!(
            db.get_secret(&forged, "instance:1:token")
                .await
                .unwrap_err(),
            DbError::Secret(SecretError::Decrypt(_))
        ));
        // A ciphertext moved to another name does not open.
        on_pool!(&db, p => sqlx::query("UPDATE secrets SET name = 'instance:2:token'")
            .execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
        assert!(db.get_secret(&keys, "instance:2:token").await.is_err());
        on_pool!(&db, p => sqlx::query("UPDATE secrets SET name = 'instance:1:token'")
            .execute(p).await.map(|r| r.rows_affected()))
        .unwrap();

        // Rotation: re-seal under a new key; then the old key alone no longer opens it.
        db.put_secret(&keys, "b", &SecretValue::new("second"))
            .await
            .unwrap();
        let rotated = keys.rotated();
        assert_eq!(db.reseal_secrets(&rotated).await.unwrap(), 2);
        assert_eq!(db.reseal_secrets(&rotated).await.unwrap(), 0);
        let only_new = Keyring::new(rotated.current(), vec![]);
        assert_eq!(
            db.get_secret(&only_new, "b")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            b"second"
        );
        assert!(db.get_secret(&keys, "b").await.is_err());
        assert!(db.delete_secret("b").await.unwrap());
        assert_eq!(db.get_secret(&only_new, "b").await.unwrap(), None);
    });

    db_test!(
        a_keyring_from_a_key_file_follows_a_rotation,
        |db| async move {
            let dir = std::env::temp_dir().join(format!("guildhall-key-{}", crate::random_hex(6)));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("secret.key");
            // A running server's keyring.
            let server = Keyring::load_or_create_file(&path).unwrap();
            db.put_secret(&server, "a", &SecretValue::new("one"))
                .await
                .unwrap();
            // `admin rotate-key --drop-old`, as another process: a new key written first, every
            // secret re-sealed, then the old key dropped from the file.
            let new = Keyring::load_or_create_file(&path).unwrap().rotated();
            new.write_file(&path, false).unwrap();
            assert_eq!(db.reseal_secrets(&new).await.unwrap(), 1);
            let only_new = Keyring::new(new.current(), vec![]);
            only_new.write_file(&path, false).unwrap();
            // The server, not restarted, opens what the new key sealed and seals with it.
            let got = db.get_secret(&server, "a").await.unwrap().unwrap();
            assert_eq!(got.expose(), b"one");
            assert_eq!(server.current().id(), new.current().id());
            db.put_secret(&server, "b", &SecretValue::new("two"))
                .await
                .unwrap();
            let got = db.get_secret(&only_new, "b").await.unwrap().unwrap();
            assert_eq!(got.expose(), b"two");
            // A clone follows too; a file that no longer parses leaves the keys as they were.
            let clone = server.clone();
            std::fs::write(&path, "not a key\n").unwrap();
            assert_eq!(clone.current().id(), new.current().id());
            std::fs::remove_dir_all(&dir).unwrap();
        }
    );

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("guildhall-key-{}", crate::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.key");
        let a = Keyring::load_or_create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = Keyring::load_or_create_file(&path).unwrap();
        assert_eq!(a.current().to_hex(), b.current().to_hex());
        let old = a.current();
        let r = a.rotated();
        r.write_file(&path, false).unwrap();
        let c = Keyring::load_or_create_file(&path).unwrap();
        assert_eq!(c.keys().len(), 2);
        assert_eq!(c.keys()[1].id(), old.id());
        assert!(!format!("{c:?}").contains(&old.to_hex()));
        // `a` follows the file it was read from.
        assert_eq!(a.current().id(), r.current().id());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            Keyring::parse("abcd", "GUILDHALL_SECRET_KEY"),
            Err(SecretError::BadKey { index: 1, .. })
        ));
    }
}

//! Ed25519 keys for IPNS, one file per key under `<repo>/keystore` (directory 0700, files 0600,
//! written to a temporary file and renamed). The file holds the libp2p protobuf encoding of the
//! private key. The key named `self` is the store's identity and is created with the repo.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p_identity::Keypair;

use crate::error::{Error, Result};
use crate::ipns::IpnsName;

/// The identity key's name.
pub const SELF_KEY: &str = "self";

/// The key directory.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "invalid key name {name:?}: use 1-64 characters of [A-Za-z0-9._-], not starting with '.'"
        )))
    }
}

impl KeyStore {
    /// Opens the keystore, creating it and the `self` key if needed.
    pub fn open(repo: &Path) -> Result<Self> {
        let dir = repo.join("keystore");
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let ks = Self { dir };
        if ks.load(SELF_KEY)?.is_none() {
            ks.write(SELF_KEY, &Keypair::generate_ed25519())?;
        }
        Ok(ks)
    }

    fn write(&self, name: &str, key: &Keypair) -> Result<()> {
        let bytes = key
            .to_protobuf_encoding()
            .map_err(|e| Error::Internal(e.to_string()))?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        let target = self.dir.join(name);
        // Never replace an existing key: link(2) fails if the target exists.
        let linked = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::KeyExists(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Loads a key by name.
    pub fn load(&self, name: &str) -> Result<Option<Keypair>> {
        check_name(name)?;
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
                .map(Some)
                .map_err(|e| Error::Internal(format!("key {name} is unreadable: {e}"))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Generates a new ed25519 key; fails if the name is taken.
    pub fn generate(&self, name: &str) -> Result<Keypair> {
        check_name(name)?;
        let key = Keypair::generate_ed25519();
        self.write(name, &key)?;
        Ok(key)
    }

    /// All keys as `(name, IPNS name)`, `self` first, then by name.
    pub fn list(&self) -> Result<Vec<(String, IpnsName)>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str()
                && check_name(name).is_ok()
            {
                names.push(name.to_string());
            }
        }
        names.sort_by(|a, b| (a != SELF_KEY, a).cmp(&(b != SELF_KEY, b)));
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(key) = self.load(&name)? {
                out.push((name, IpnsName::from_public_key(&key.public())));
            }
        }
        Ok(out)
    }

    /// The identity key.
    pub fn identity(&self) -> Result<Keypair> {
        self.load(SELF_KEY)?
            .ok_or_else(|| Error::Internal("identity key missing".into()))
    }

    /// The key for `name` or for an IPNS name/peer id of a local key.
    pub fn find(&self, name_or_id: &str) -> Result<(String, Keypair)> {
        if check_name(name_or_id).is_ok()
            && let Some(key) = self.load(name_or_id)?
        {
            return Ok((name_or_id.to_string(), key));
        }
        if let Ok(target) = name_or_id.parse::<IpnsName>() {
            for (name, id) in self.list()? {
                if id == target {
                    let key = self
                        .load(&name)?
                        .ok_or_else(|| Error::KeyNotFound(name.clone()))?;
                    return Ok((name, key));
                }
            }
        }
        Err(Error::KeyNotFound(name_or_id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn keys_are_private_persistent_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(dir.path()).unwrap();
        let me = ks.identity().unwrap().public();
        let k = ks.generate("alpha").unwrap();
        assert!(matches!(ks.generate("alpha"), Err(Error::KeyExists(_))));
        assert!(matches!(ks.generate("../x"), Err(Error::BadRequest(_))));
        let mode = fs::metadata(dir.path().join("keystore/alpha"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let ks = KeyStore::open(dir.path()).unwrap();
        assert_eq!(ks.identity().unwrap().public(), me);
        let list = ks.list().unwrap();
        assert_eq!(list[0].0, "self");
        assert_eq!(
            list[1],
            ("alpha".into(), IpnsName::from_public_key(&k.public()))
        );
        let by_id = ks.find(&list[1].1.to_string()).unwrap();
        assert_eq!(by_id.0, "alpha");
        assert!(matches!(ks.find("nope"), Err(Error::KeyNotFound(_))));
    }
}

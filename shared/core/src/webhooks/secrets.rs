//! The endpoints' signing secrets at rest: sealed with AES-256-GCM under a master key from
//! the settings (`webhooks.master_keys`), each ciphertext naming the key that sealed it, so
//! that keys rotate without a flag day: the first key of the ring seals, every key opens what
//! it sealed, and `hbi rekey-webhooks` seals every secret again under the first.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Standard Webhooks' prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
const NONCE_BYTES: usize = 12;
/// Random bytes of a secret HBI makes (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// The master keys, the sealing one first.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(String, Key<Aes256Gcm>)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing").field("ids", &ids).finish()
    }
}

/// A secret sealed under one key: base64 of nonce and ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub ciphertext: String,
}

impl KeyRing {
    /// `id:base64,id:base64…`, each key 32 bytes, ids distinct and made of letters, digits,
    /// `-` and `_`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys: Vec<(String, Key<Aes256Gcm>)> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| anyhow!("each key is `id:base64` (e.g. k1:…)"))?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                bail!("a key id is letters, digits, - and _");
            }
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| anyhow!("key {id} is not base64"))?;
            let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                bail!("key {id} has {} bytes; an AES-256 key has 32", bytes.len());
            };
            if keys.iter().any(|(known, _)| known == id) {
                bail!("key id {id} is given twice");
            }
            keys.push((id.to_owned(), Key::<Aes256Gcm>::from(bytes)));
        }
        if keys.is_empty() {
            bail!("no key is given");
        }
        Ok(Self { keys })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn seal(&self, secret: &str) -> anyhow::Result<Sealed> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|err| anyhow!("no random numbers from the system: {err}"))?;
        let ciphertext = Aes256Gcm::new(key)
            .encrypt(&Nonce::from(nonce), secret.as_bytes())
            .map_err(|_| anyhow!("sealing the secret failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        Ok(Sealed {
            key_id: id.clone(),
            ciphertext: STANDARD.encode(sealed),
        })
    }

    pub fn open(&self, sealed: &Sealed) -> anyhow::Result<String> {
        let (_, key) = self.keys.iter().find(|(id, _)| *id == sealed.key_id).ok_or_else(|| {
            anyhow!(
                "the secret was sealed with master key {}, which webhooks.master_keys no longer holds",
                sealed.key_id
            )
        })?;
        let bytes = STANDARD
            .decode(&sealed.ciphertext)
            .context("a sealed secret is not base64")?;
        if bytes.len() <= NONCE_BYTES {
            bail!("a sealed secret is too short");
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce = <[u8; NONCE_BYTES]>::try_from(nonce).context("a sealed secret's nonce")?;
        let plain = Aes256Gcm::new(key)
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| anyhow!("a sealed secret does not open with master key {}", sealed.key_id))?;
        String::from_utf8(plain).context("a sealed secret is not text")
    }
}

/// A new signing secret: `whsec_` and base64 of 32 random bytes.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| anyhow!("no random numbers from the system: {err}"))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// Why a secret an admin chose is refused, if it is: Standard Webhooks' `whsec_` and base64
/// of 24 to 64 bytes.
pub fn secret_problem(secret: &str) -> Option<String> {
    let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) else {
        return Some(format!("must start with {SECRET_PREFIX}"));
    };
    match STANDARD.decode(encoded) {
        Ok(bytes) if (24..=64).contains(&bytes.len()) => None,
        Ok(bytes) => Some(format!("holds {} bytes; 24 to 64 are needed", bytes.len())),
        Err(_) => Some(format!("must be {SECRET_PREFIX} and base64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn secrets_open_under_the_key_that_sealed_them_after_a_rotation() -> anyhow::Result<()> {
        let old = KeyRing::parse(&format!("k1:{}", key(1)))?;
        let sealed = old.seal("whsec_secret")?;
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.ciphertext.contains("secret"));
        assert_ne!(
            old.seal("whsec_secret")?.ciphertext,
            sealed.ciphertext,
            "a fresh nonce each time"
        );

        let rotated = KeyRing::parse(&format!("k2:{}, k1:{}", key(2), key(1)))?;
        assert_eq!(rotated.open(&sealed)?, "whsec_secret");
        let resealed = rotated.seal("whsec_secret")?;
        assert_eq!(resealed.key_id, "k2");
        let only_new = KeyRing::parse(&format!("k2:{}", key(2)))?;
        assert_eq!(only_new.open(&resealed)?, "whsec_secret");
        assert!(only_new.open(&sealed).is_err(), "k1 is gone");

        let mut tampered = resealed.clone();
        tampered.ciphertext = STANDARD.encode(b"0123456789abcdefghijklmnop");
        assert!(only_new.open(&tampered).is_err(), "GCM refuses a forged ciphertext");
        Ok(())
    }

    #[test]
    fn key_rings_are_checked() {
        for bad in [
            "",
            "k1",
            "k1:notbase64!",
            &format!("k1:{}", STANDARD.encode([0u8; 16])),
            &format!("k1:{0},k1:{0}", key(1)),
            &format!("k 1:{}", key(1)),
        ] {
            assert!(KeyRing::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chosen_secrets_follow_standard_webhooks() -> anyhow::Result<()> {
        assert_eq!(secret_problem(&new_secret()?), None);
        assert!(secret_problem("hunter2").is_some());
        assert!(secret_problem(&format!("whsec_{}", STANDARD.encode([0u8; 8]))).is_some());
        Ok(())
    }
}

//! `switchyard token`: a fresh random token and its SHA-256, the digest being what
//! a `[[users]]` entry holds, so the config file never contains a usable secret.

use switchyard_broker::auth::digest;

/// Random bytes in a token: 256 bits from the OS RNG, far past guessing.
const TOKEN_BYTES: usize = 32;

/// A token just made, shown once.
pub struct Token {
    secret: String,
}

impl Token {
    /// Draws a token from the operating system's RNG; hex so it survives a shell,
    /// a URL (`?token=`) and a header unquoted.
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Token {
            secret: hex::encode(bytes),
        })
    }

    /// The token a client presents.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The lowercase hex SHA-256 of the token, as `token_sha256` takes it.
    pub fn sha256_hex(&self) -> String {
        hex::encode(digest(&self.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_sha256_of_the_token_text() {
        let t = Token {
            secret: "test".into(),
        };
        assert_eq!(
            t.sha256_hex(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}

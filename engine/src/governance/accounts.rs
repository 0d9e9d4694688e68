//! Accounts: the users who may connect (`autolake serve`), kept in the
//! lake with their roles and password hashes, and the random tokens
//! handed out as generated passwords and session handles.
//!
//! One JSON document per user at `<lake>/users/<name>.json` with the
//! password as an argon2id PHC string (salted; the password itself is
//! never stored or logged) and the user's roles. Any server on the same
//! lake sees the same users. On first start the server creates `admin`
//! with the password in `AUTOLAKE_ADMIN_PASSWORD`, or a generated one it
//! prints once.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::docs::DocStore;
use crate::lake::{Lake, validate_name};
use crate::principal::Principal;

/// A stored user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// argon2id PHC string of the password.
    pub password_hash: String,
    /// Roles held.
    pub roles: Vec<String>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The principal this user acts as.
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            roles: self.roles.clone(),
            stored: true,
        }
    }
}

/// The users of a lake.
#[derive(Debug, Clone)]
pub struct UserStore {
    docs: DocStore<User>,
}

impl UserStore {
    /// The users of `lake`.
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            docs: DocStore::new(lake, "users", "user"),
        }
    }

    /// The user called `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<User>> {
        if validate_name("user", name).is_err() {
            return Ok(None);
        }
        self.docs.get(name).await
    }

    /// Creates a user; an error when the name is taken (also by another
    /// process at the same moment: the write is create-only).
    pub async fn create(&self, name: &str, password: &str, roles: Vec<String>) -> Result<User> {
        validate_name("user", name)?;
        if password.is_empty() {
            return Err(Error::invalid(format!(
                "user {name} needs a non-empty password"
            )));
        }
        let user = User {
            name: name.to_string(),
            password_hash: hash_password(password)?,
            roles,
            created_at: Utc::now(),
        };
        if !self.docs.create(name, &user).await? {
            return Err(Error::AlreadyExists {
                kind: "user",
                name: name.to_string(),
            });
        }
        Ok(user)
    }

    /// Every user, by name.
    pub async fn list(&self) -> Result<Vec<User>> {
        self.docs.list().await
    }

    /// Replaces a user's roles.
    pub async fn set_roles(&self, name: &str, roles: Vec<String>) -> Result<()> {
        let mut user = self.require(name).await?;
        user.roles = roles;
        self.docs.put(name, &user).await
    }

    /// Replaces a user's password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        if password.is_empty() {
            return Err(Error::invalid(format!(
                "user {name} needs a non-empty password"
            )));
        }
        let mut user = self.require(name).await?;
        user.password_hash = hash_password(password)?;
        self.docs.put(name, &user).await
    }

    /// Deletes a user; `false` when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        self.docs.delete(name).await
    }

    /// The user called `name`, or a not-found error.
    pub async fn require(&self, name: &str) -> Result<User> {
        self.get(name).await?.ok_or_else(|| Error::NotFound {
            kind: "user",
            name: name.to_string(),
        })
    }

    /// The user whose name and password these are, or `None`. Unknown
    /// users and wrong passwords are not told apart.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<Option<User>> {
        let Some(user) = self.get(name).await? else {
            return Ok(None);
        };
        let hash = PasswordHash::new(&user.password_hash).map_err(|e| {
            Error::internal(format!("user {name} has an unreadable password hash: {e}"))
        })?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
            .then_some(user))
    }

    /// Creates `admin` unless it exists: with `password`, or a generated
    /// one, which is returned so it can be shown once.
    pub async fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>> {
        if self.get("admin").await?.is_some() {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) if !p.is_empty() => (p.to_string(), false),
            _ => (random_token(18), true),
        };
        self.create("admin", &password, vec!["admin".to_string()])
            .await?;
        Ok(generated.then_some(password))
    }
}

fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::internal(format!("cannot hash the password: {e}")))?
        .to_string())
}

/// `bytes` random bytes from the OS, as lower-case hex.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_are_hashed_and_checked() {
        let lake = Lake::open("memory://users-test", &Default::default())
            .await
            .unwrap();
        let users = UserStore::new(lake);
        let generated = users.ensure_admin(None).await.unwrap().unwrap();
        assert_eq!(generated.len(), 36);
        assert!(users.ensure_admin(None).await.unwrap().is_none());
        let admin = users.get("admin").await.unwrap().unwrap();
        assert!(admin.password_hash.starts_with("$argon2id$"));
        assert!(!admin.password_hash.contains(&generated));
        assert!(
            users
                .authenticate("admin", &generated)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            users
                .authenticate("admin", "wrong")
                .await
                .unwrap()
                .is_none()
        );
        assert!(users.authenticate("nobody", "x").await.unwrap().is_none());
        assert!(users.authenticate("../etc", "x").await.unwrap().is_none());
    }
}

//! AutoLake's own session settings (`SET autolake.…`) and the cluster
//! address they may name: read by the lake scan and the query planner
//! below the cluster module, so kept apart from it.

use std::time::Duration;

use datafusion::common::extensions_options;
use datafusion::config::ConfigExtension;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::prelude::SessionConfig;

use crate::error::{Error, Result};

extensions_options! {
    /// AutoLake's session settings (`SET autolake.…`).
    pub struct AutoLakeOptions {
        /// The Ballista scheduler this session's queries run on
        /// (`df://host:port`); empty: this process.
        pub cluster: String, default = String::new()
    }
}

impl ConfigExtension for AutoLakeOptions {
    const PREFIX: &'static str = "autolake";
}

/// A scheduler's address, as `df://host:port` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAddress {
    /// Host name or address.
    pub host: String,
    /// Its gRPC port.
    pub port: u16,
}

impl ClusterAddress {
    /// Parses `df://host:port` (the scheme may be left out).
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text.trim().strip_prefix("df://").unwrap_or(text.trim());
        let invalid = || {
            Error::invalid(format!(
                "invalid cluster address {text:?}: expected df://HOST:PORT, the address of \
                 `autolake cluster scheduler`"
            ))
        };
        if rest.contains("://") || rest.contains('/') {
            return Err(invalid());
        }
        let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        if host.is_empty() || port == 0 {
            return Err(invalid());
        }
        Ok(Self {
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        })
    }

    /// The scheduler's gRPC endpoint.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.authority())
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for ClusterAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "df://{}", self.authority())
    }
}

/// Fails fast, with a clear error, when nothing answers at `address`.
pub async fn check_reachable(address: &ClusterAddress) -> Result<()> {
    let connect = tokio::net::TcpStream::connect((address.host.as_str(), address.port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable_error(address, &e.to_string())),
        Err(_) => Err(unreachable_error(address, "no answer in 5 s")),
    }
}

pub(crate) fn unreachable_error(address: &ClusterAddress, reason: &str) -> Error {
    Error::Unavailable(format!(
        "cannot reach the Ballista scheduler at {address}: {reason} (is `autolake cluster \
         scheduler` running there?)"
    ))
}

/// The cluster a session's settings name, if any.
pub(crate) fn session_cluster(config: &SessionConfig) -> DFResult<Option<ClusterAddress>> {
    let Some(options) = config.options().extensions.get::<AutoLakeOptions>() else {
        return Ok(None);
    };
    if options.cluster.trim().is_empty() {
        return Ok(None);
    }
    ClusterAddress::parse(&options.cluster)
        .map(Some)
        .map_err(|e| DataFusionError::Plan(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_addresses_are_read_as_users_write_them() {
        let a = ClusterAddress::parse("df://sched.internal:50050").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("sched.internal", 50050));
        assert_eq!(a.url(), "http://sched.internal:50050");
        assert_eq!(a.to_string(), "df://sched.internal:50050");
        assert_eq!(
            ClusterAddress::parse("127.0.0.1:9").unwrap().url(),
            "http://127.0.0.1:9"
        );
        let v6 = ClusterAddress::parse("df://[::1]:50050").unwrap();
        assert_eq!(v6.url(), "http://[::1]:50050");
        for bad in [
            "",
            "df://",
            "df://host",
            "http://h:1",
            "df://h:0",
            "df://h:x",
            "df://h:1/x",
        ] {
            let e = ClusterAddress::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected df://HOST:PORT"), "{bad}: {e}");
        }
    }
}

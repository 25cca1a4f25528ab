//! Where a webhook may be sent: an http(s) URL whose host resolves to public addresses only,
//! unless the operator allows private targets (`webhooks.allow_private_targets`). Checked
//! when an endpoint is registered and again before every attempt, and the attempt connects to
//! the address that was checked, so a name that later resolves inward (DNS rebinding) is
//! refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a URL is refused as a webhook target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    #[error("must be an http or https URL")]
    NotHttp,
    #[error("must name a host")]
    NoHost,
    #[error("{host} cannot be resolved: {reason}")]
    Unresolved { host: String, reason: String },
    #[error(
        "{host} resolves to {address}, a private, loopback or link-local address (webhooks.allow_private_targets allows them)"
    )]
    Private { host: String, address: IpAddr },
}

/// A target that passed: the URL, its host, and the address to connect to.
#[derive(Debug, Clone)]
pub struct CheckedTarget {
    pub url: reqwest::Url,
    pub host: String,
    pub address: SocketAddr,
}

/// The URL's form alone (scheme, host), for a refusal before any lookup.
pub fn parse(url: &str) -> Result<reqwest::Url, TargetRefused> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| TargetRefused::NotHttp)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetRefused::NotHttp);
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(TargetRefused::NoHost);
    }
    Ok(parsed)
}

/// Resolves the URL's host and checks every address it gives.
pub async fn check(url: &str, allow_private: bool) -> Result<CheckedTarget, TargetRefused> {
    let url = parse(url)?;
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|err| TargetRefused::Unresolved {
            host: host.clone(),
            reason: err.to_string(),
        })?
        .collect();
    let Some(first) = addresses.first().copied() else {
        return Err(TargetRefused::Unresolved {
            host,
            reason: "no address".to_owned(),
        });
    };
    if !allow_private && let Some(inward) = addresses.iter().find(|address| !is_public(address.ip())) {
        return Err(TargetRefused::Private {
            host,
            address: inward.ip(),
        });
    }
    Ok(CheckedTarget {
        url,
        host,
        address: first,
    })
}

/// Whether an address is on the public internet: not loopback, private, link-local (cloud
/// metadata lives there), shared (CGNAT), unspecified, broadcast, documentation or multicast.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || a >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    !(v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inward_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(address.parse().expect("address")), "{address}");
        }
        for address in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(address.parse().expect("address")), "{address}");
        }
    }

    #[tokio::test]
    async fn only_http_urls_to_public_hosts_pass() {
        assert_eq!(parse("ftp://example.com/x").err(), Some(TargetRefused::NotHttp));
        assert_eq!(parse("file:///etc/passwd").err(), Some(TargetRefused::NotHttp));
        assert_eq!(parse("not a url").err(), Some(TargetRefused::NotHttp));
        for inward in [
            "http://127.0.0.1:9/hook",
            "http://localhost:9/hook",
            "http://[::1]:9/",
            "http://169.254.169.254/latest",
        ] {
            assert!(
                matches!(check(inward, false).await, Err(TargetRefused::Private { .. })),
                "{inward}"
            );
        }
        let allowed = check("http://127.0.0.1:9/hook", true).await.expect("allowed");
        assert_eq!(allowed.address, "127.0.0.1:9".parse().expect("address"));
    }
}

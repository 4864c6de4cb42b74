//! Where server-side requests may go: a guard against server-side request forgery (SSRF).
//!
//! Guildhall fetches URLs its users type (instance base URLs, blocklist URL and feed sources).
//! Without a guard, a user could make the server call its own loopback services, the private
//! network it runs in, or a cloud metadata endpoint (`169.254.169.254`) and read the answer
//! back. With [`Outbound::PublicOnly`] requests only reach public (globally routable)
//! addresses:
//! - host names are resolved by [`PublicResolver`], which drops non-public addresses (so a
//!   name that resolves to `127.0.0.1` fails, also when it is a redirect target);
//! - IP-literal URLs skip any resolver, so they are checked by [`check_url`] before a request
//!   and by the redirect policy [`apply`] installs for redirect targets;
//! - no proxy is used, not even one named by `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`: a proxy
//!   resolves and connects to the target itself, out of the guard's reach (an egress proxy
//!   must then do its own filtering, with [`Outbound::Any`]).

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Which addresses server-side requests may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outbound {
    /// Any address. For tests and development, where the fakes listen on `127.0.0.1`, and
    /// for deployments whose instances really are on a private network.
    #[default]
    Any,
    /// Only public addresses: users cannot make the server reach loopback, private,
    /// link-local (cloud metadata), multicast or other non-global addresses. Production.
    PublicOnly,
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The address is not public.
    #[error("{ip} is not a public address ({kind}); only public addresses may be fetched")]
    Address {
        /// The address.
        ip: IpAddr,
        /// What kind of address it is (`loopback`, `private`, …).
        kind: &'static str,
    },
    /// Every address the host name resolves to is not public.
    #[error("{host} resolves only to non-public addresses ({addrs}); only public addresses may be fetched")]
    Host {
        /// The host name.
        host: String,
        /// The addresses it resolved to.
        addrs: String,
    },
    /// The host name could not be resolved.
    #[error("{host}: could not resolve the name: {message}")]
    Lookup {
        /// The host name.
        host: String,
        /// What failed.
        message: String,
    },
    /// Too many redirects.
    #[error("{url}: too many redirects")]
    TooManyRedirects {
        /// The last target.
        url: String,
    },
}

/// The most redirects followed.
const MAX_REDIRECTS: usize = 5;

/// `Ok` when `ip` is a public (globally routable) address; otherwise what kind it is.
/// IPv4-mapped, NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address inside.
pub fn check_ip(ip: IpAddr) -> Result<(), Refused> {
    let kind = match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    };
    match kind {
        None => Ok(()),
        Some(kind) => Err(Refused::Address { ip, kind }),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (10, _, _) => "private",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 168, _) => "private",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if s[..6] == [0; 6] {
        return Some("IPv4-compatible (deprecated)");
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_kind(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return v4_kind(embedded(s[1], s[2]));
    }
    Some(match s[0] {
        0xfc00..=0xfdff => "unique local (private)",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local (deprecated)",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] < 0x0200 => "IETF protocol assignment",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x2000..=0x3fff => return None,
        _ => "not global unicast",
    })
}

/// Checks a URL before a request: with [`Outbound::PublicOnly`], an IP-literal host must be
/// public (host names are checked when they are resolved, by [`PublicResolver`]).
pub fn check_url(url: &Url, outbound: Outbound) -> Result<(), Refused> {
    if outbound == Outbound::Any {
        return Ok(());
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip)),
        Some(Host::Domain(_)) | None => Ok(()),
    }
}

/// A DNS resolver (the system's, through `tokio::net::lookup_host`) that drops non-public
/// addresses; a name left with none fails with an error naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicResolver;

type BoxError = Box<dyn StdError + Send + Sync>;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| {
                    Box::new(Refused::Lookup {
                        host: host.clone(),
                        message: e.to_string(),
                    }) as BoxError
                })?
                .collect();
            if found.is_empty() {
                return Err(Box::new(Refused::Lookup {
                    host,
                    message: "no addresses".to_owned(),
                }) as BoxError);
            }
            let (public, other): (Vec<SocketAddr>, Vec<SocketAddr>) =
                found.into_iter().partition(|a| check_ip(a.ip()).is_ok());
            if public.is_empty() {
                let addrs = other
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(Refused::Host { host, addrs }) as BoxError);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Applies `outbound` to a reqwest client builder: with [`Outbound::PublicOnly`] it turns
/// proxies off (also those from the environment), installs [`PublicResolver`] and a redirect
/// policy that checks IP-literal targets (at most 5 redirects). With [`Outbound::Any`] the
/// builder is returned unchanged.
pub fn apply(builder: reqwest::ClientBuilder, outbound: Outbound) -> reqwest::ClientBuilder {
    match outbound {
        Outbound::Any => builder,
        Outbound::PublicOnly => builder
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    let url = attempt.url().to_string();
                    return attempt.error(Refused::TooManyRedirects { url });
                }
                match check_url(attempt.url(), Outbound::PublicOnly) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e),
                }
            })),
    }
}

/// The refusal inside an error's source chain, if the error is one.
pub fn refusal<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Refused> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// A reqwest error in words: the refusal when the guard stopped it, else the error with its
/// causes (reqwest's own message omits them).
pub fn describe(err: &reqwest::Error) -> String {
    if let Some(r) = refusal(err) {
        return r.to_string();
    }
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        check_ip(s.parse().unwrap()).is_err()
    }

    #[test]
    fn v4_ranges() {
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.5",
            "198.18.0.1",
        ] {
            assert!(refused(bad), "{bad} should be refused");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
        ] {
            assert!(!refused(good), "{good} should be allowed");
        }
    }

    #[test]
    fn v6_ranges() {
        for bad in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "100::1",
        ] {
            assert!(refused(bad), "{bad} should be refused");
        }
        for good in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!refused(good), "{good} should be allowed");
        }
    }

    #[test]
    fn refusals_name_the_kind() {
        let e = check_ip("169.254.169.254".parse().unwrap()).unwrap_err();
        assert_eq!(
            e,
            Refused::Address {
                ip: "169.254.169.254".parse().unwrap(),
                kind: "link-local"
            }
        );
        assert!(e.to_string().contains("169.254.169.254"));
    }

    #[test]
    fn urls_with_ip_literals_are_checked_only_when_public_only() {
        let u = |s: &str| Url::parse(s).unwrap();
        let p = Outbound::PublicOnly;
        assert!(check_url(&u("http://127.0.0.1:8080/x"), p).is_err());
        assert!(check_url(&u("http://[::1]/"), p).is_err());
        assert!(check_url(&u("http://[::ffff:192.168.0.1]/"), p).is_err());
        // The URL parser normalises other spellings of IPv4 addresses.
        assert!(check_url(&u("http://2130706433/"), p).is_err());
        assert!(check_url(&u("http://0x7f.1/"), p).is_err());
        assert!(check_url(&u("https://8.8.8.8/"), p).is_ok());
        // Names are left to the resolver.
        assert!(check_url(&u("http://localhost/"), p).is_ok());
        assert!(check_url(&u("http://127.0.0.1/"), Outbound::Any).is_ok());
    }
}

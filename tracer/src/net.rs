//! Port mapping (PRoot-udocker's `-p GUEST:HOST`): a guest that binds an internet socket to a
//! mapped port gets the host port instead. The usual use is a privileged port (80) that an
//! unprivileged user cannot bind (ip(7): ports below `net.ipv4.ip_unprivileged_port_start`
//! need CAP_NET_BIND_SERVICE), or two containers that want the same port.
//! What the guest sees stays its own: getsockname(2) reports the guest port again, and a
//! connect(2) to a mapped port on the loopback address reaches the mapped host port, so
//! clients inside the container find their server. Connections to other hosts are untouched.
//! sockaddr_in and sockaddr_in6 (ip(7), ipv6(7)): family (u16, host order) then the port
//! (u16, network order) at offset 2; the address at offset 4 (in) or 8 (in6).

/// One mapping: the port the guest uses, the port really used on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMap {
    pub guest: u16,
    pub host: u16,
}

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

fn family_port(raw: &[u8]) -> Option<(u16, u16)> {
    if raw.len() < 4 {
        return None;
    }
    let fam = u16::from_ne_bytes([raw[0], raw[1]]);
    match fam {
        AF_INET if raw.len() >= 16 => {}
        AF_INET6 if raw.len() >= 24 => {}
        _ => return None,
    }
    Some((fam, u16::from_be_bytes([raw[2], raw[3]])))
}

/// Is the address of this sockaddr a loopback one (127/8, ::1, ::ffff:127/104)?
fn is_loopback(raw: &[u8]) -> bool {
    match family_port(raw) {
        Some((AF_INET, _)) => raw[4] == 127,
        Some((AF_INET6, _)) => {
            let a = &raw[8..24];
            a[..15].iter().all(|b| *b == 0) && a[15] == 1
                || (a[..10].iter().all(|b| *b == 0)
                    && a[10] == 0xff
                    && a[11] == 0xff
                    && a[12] == 127)
        }
        _ => false,
    }
}

fn with_port(raw: &[u8], port: u16) -> Vec<u8> {
    let mut out = raw.to_vec();
    out[2..4].copy_from_slice(&port.to_be_bytes());
    out
}

/// bind(2): the sockaddr with the guest port replaced by its host port, if mapped.
pub fn on_bind(maps: &[PortMap], raw: &[u8]) -> Option<Vec<u8>> {
    let (_, port) = family_port(raw)?;
    let m = maps.iter().find(|m| m.guest == port && port != 0)?;
    Some(with_port(raw, m.host))
}

/// connect(2) and sendto(2): a loopback destination on a mapped guest port goes to the host
/// port where the guest's server really listens.
pub fn on_connect(maps: &[PortMap], raw: &[u8]) -> Option<Vec<u8>> {
    if !is_loopback(raw) {
        return None;
    }
    on_bind(maps, raw)
}

/// Network cooperation (`-n`): the sockaddr with port 0 (the kernel picks a free one) and the
/// port the guest asked for; None for port 0 itself or a non-internet address.
pub fn any_port(raw: &[u8]) -> Option<(Vec<u8>, u16)> {
    let (_, port) = family_port(raw)?;
    (port != 0).then(|| (with_port(raw, 0), port))
}

/// getsockname(2): a socket bound to a mapped host port reports the guest port. getpeername(2)
/// likewise for a loopback peer.
pub fn on_name(maps: &[PortMap], raw: &[u8], peer: bool) -> Option<Vec<u8>> {
    let (_, port) = family_port(raw)?;
    if peer && !is_loopback(raw) {
        return None;
    }
    let m = maps.iter().find(|m| m.host == port && port != 0)?;
    Some(with_port(raw, m.guest))
}

/// Parse PRoot-udocker's `-p` value: `GUEST:HOST` (PRoot's order), or a single port mapped to
/// itself (accepted, a no-op).
pub fn parse(spec: &str) -> Option<PortMap> {
    let (g, h) = spec.split_once(':').unwrap_or((spec, spec));
    Some(PortMap {
        guest: g.trim().parse().ok().filter(|p| *p != 0)?,
        host: h.trim().parse().ok().filter(|p| *p != 0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sin(port: u16, addr: [u8; 4]) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        v[2..4].copy_from_slice(&port.to_be_bytes());
        v[4..8].copy_from_slice(&addr);
        v
    }

    fn sin6(port: u16, addr: [u8; 16]) -> Vec<u8> {
        let mut v = vec![0u8; 28];
        v[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        v[2..4].copy_from_slice(&port.to_be_bytes());
        v[8..24].copy_from_slice(&addr);
        v
    }

    const M: &[PortMap] = &[PortMap {
        guest: 80,
        host: 8080,
    }];

    #[test]
    fn bind_maps_and_names_come_back() {
        let b = on_bind(M, &sin(80, [0, 0, 0, 0])).unwrap();
        assert_eq!(b, sin(8080, [0, 0, 0, 0]));
        assert_eq!(on_bind(M, &sin(81, [0, 0, 0, 0])), None);
        assert_eq!(on_bind(M, &sin(0, [0, 0, 0, 0])), None);
        assert_eq!(on_name(M, &b, false).unwrap(), sin(80, [0, 0, 0, 0]));
        let mut any6 = [0u8; 16];
        assert_eq!(
            on_bind(M, &sin6(80, any6)).unwrap(),
            sin6(8080, any6),
            "IPv6 too"
        );
        any6[15] = 1;
        assert_eq!(on_connect(M, &sin6(80, any6)).unwrap(), sin6(8080, any6));
    }

    #[test]
    fn connect_only_to_loopback() {
        assert_eq!(
            on_connect(M, &sin(80, [127, 0, 0, 1])).unwrap(),
            sin(8080, [127, 0, 0, 1])
        );
        assert_eq!(on_connect(M, &sin(80, [10, 1, 2, 3])), None);
        assert_eq!(on_name(M, &sin(8080, [10, 1, 2, 3]), true), None);
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12] = 127;
        mapped[15] = 1;
        assert!(on_connect(M, &sin6(80, mapped)).is_some());
    }

    #[test]
    fn short_or_foreign_addresses_are_left_alone() {
        assert_eq!(on_bind(M, &[2, 0, 0]), None);
        let mut unix = vec![0u8; 16];
        unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        unix[2..4].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(on_bind(M, &unix), None);
    }

    #[test]
    fn parse_specs() {
        assert_eq!(
            parse("80:8080"),
            Some(PortMap {
                guest: 80,
                host: 8080
            })
        );
        assert_eq!(
            parse("8080"),
            Some(PortMap {
                guest: 8080,
                host: 8080
            })
        );
        assert_eq!(parse("0:1"), None);
        assert_eq!(parse("x:1"), None);
        assert_eq!(parse("70000:1"), None);
    }
}

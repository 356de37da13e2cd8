#![cfg(unix)]
//! `braid dns` against `dig` (Debian's bind9-dnsutils, which
//! `./scripts/test.sh` installs): UDP and TCP, NXDOMAIN and NODATA with
//! the SOA, REFUSED outside the zone, MX additionals, and a large answer
//! truncated over UDP then fetched whole over TCP.

use std::process::Command;

mod common;
use common::{braid, Running};

const ZONE: &str = "\
$TTL 300
@       IN SOA ns1.example.test. hostmaster.example.test. ( 2026120101 3600 600 86400 60 )
        IN NS  ns1
        IN MX  10 mail
        IN A   192.0.2.1
ns1     IN A   192.0.2.53
mail    IN A   192.0.2.25
        IN AAAA 2001:db8::25
www     IN CNAME example.test.
";

fn dns() -> (Running, String) {
    // One directory per server: the tests run at once in one process.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("braid-dns-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut zone = String::from(ZONE);
    for i in 0..40 {
        zone.push_str(&format!(
            "big IN TXT \"{}\"\n",
            format!("{i:02}").repeat(30)
        ));
    }
    let file = dir.join("example.test.zone");
    std::fs::write(&file, zone).unwrap();
    let zone = format!("example.test.={}", file.display());
    let (child, first) = braid(&["dns", "--port", "0", "--zone", &zone]);
    let port = first.rsplit(':').next().unwrap().to_owned();
    (child, port)
}

fn dig(port: &str, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", port, "+time=5", "+tries=1"])
        .args(args)
        .output()
        .expect("dig (./scripts/test.sh installs bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dig_against_braid_dns() {
    let (_server, port) = dns();
    for transport in ["+notcp", "+tcp"] {
        let a = dig(&port, &[transport, "example.test", "A"]);
        assert!(
            a.contains("status: NOERROR") && a.contains("flags: qr aa rd"),
            "{a}"
        );
        assert!(a.contains("example.test.\t\t300\tIN\tA\t192.0.2.1"), "{a}");
    }
    let cname = dig(&port, &["+short", "www.example.test", "A"]);
    assert_eq!(cname.trim(), "example.test.\n192.0.2.1");
    let mx = dig(&port, &["example.test", "MX"]);
    assert!(
        mx.contains(";; ADDITIONAL SECTION:")
            && mx.contains("mail.example.test.\t300\tIN\tAAAA\t2001:db8::25"),
        "{mx}"
    );
    let nx = dig(&port, &["nope.example.test", "A"]);
    assert!(
        nx.contains("status: NXDOMAIN")
            && nx.contains(";; AUTHORITY SECTION:")
            && nx.contains("SOA"),
        "{nx}"
    );
    let nodata = dig(&port, &["mail.example.test", "TXT"]);
    assert!(
        nodata.contains("status: NOERROR")
            && nodata.contains("ANSWER: 0")
            && nodata.contains("SOA"),
        "{nodata}"
    );
    let refused = dig(&port, &["www.example.org", "A"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
}

#[test]
fn large_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let (_server, port) = dns();
    // +ignore: show the truncated UDP answer instead of retrying on TCP.
    let cut = dig(&port, &["+ignore", "+noedns", "big.example.test", "TXT"]);
    assert!(cut.contains(" tc") && cut.contains("ANSWER: 0"), "{cut}");
    let cut_edns = dig(
        &port,
        &["+ignore", "+bufsize=1232", "big.example.test", "TXT"],
    );
    assert!(
        cut_edns.contains(" tc") && cut_edns.contains("udp: 1232"),
        "{cut_edns}"
    );
    // Without +ignore dig retries over TCP, as every resolver does.
    let whole = dig(&port, &["big.example.test", "TXT"]);
    assert!(
        whole.contains("Truncated, retrying in TCP mode") || whole.contains("ANSWER: 40"),
        "{whole}"
    );
    assert!(whole.contains("ANSWER: 40"), "{whole}");
}

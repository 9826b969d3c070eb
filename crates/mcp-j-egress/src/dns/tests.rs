use super::*;

use std::sync::Mutex;

const TYPE_MX: u16 = 15;
const TYPE_TXT: u16 = 16;
const TYPE_HTTPS: u16 = 65;
const TYPE_ANY: u16 = 255;
const CLASS_CH: u16 = 3;

fn allowlist(rules: &[&str]) -> Allowlist {
    Allowlist::parse(rules.iter().copied(), std::iter::empty::<&str>()).unwrap()
}

/// A query as a stub resolver sends it: one question, `RD` set.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    query_class(id, name, qtype, CLASS_IN)
}

fn query_class(id: u16, name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let labels: Vec<&[u8]> = name.split('.').filter(|l| !l.is_empty()).map(str::as_bytes).collect();
    query_labels(id, &labels, qtype, qclass)
}

fn query_labels(id: u16, labels: &[&[u8]], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut p = header(id, 0x0100, 1);
    for l in labels {
        p.push(l.len() as u8);
        p.extend_from_slice(l);
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&qclass.to_be_bytes());
    p
}

fn header(id: u16, flags: u16, qdcount: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&qdcount.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    p
}

/// What a test reads back from a response.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    id: u16,
    rcode: u8,
    qdcount: u16,
    ancount: u16,
    addr: Option<Ipv4Addr>,
}

fn parse(resp: &[u8]) -> Parsed {
    assert!(resp.len() >= 12 && resp.len() <= MAX_RESPONSE_BYTES, "{resp:?}");
    let flags = u16::from_be_bytes([resp[2], resp[3]]);
    assert_ne!(flags & FLAG_QR, 0, "QR must be set");
    let ancount = u16::from_be_bytes([resp[6], resp[7]]);
    let addr = (ancount == 1).then(|| {
        let n = resp.len();
        // Pointer to 12, type A, class IN, TTL, rdlength 4, the address.
        assert_eq!(
            &resp[n - 16..n - 4],
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, TTL_SECONDS as u8, 0, 4]
        );
        Ipv4Addr::new(resp[n - 4], resp[n - 3], resp[n - 2], resp[n - 1])
    });
    Parsed {
        id: u16::from_be_bytes([resp[0], resp[1]]),
        rcode: (flags & 0xf) as u8,
        qdcount: u16::from_be_bytes([resp[4], resp[5]]),
        ancount,
        addr,
    }
}

fn ask(packet: &[u8], allow: &Allowlist, names: &SyntheticNames) -> (Parsed, QueryEvent) {
    let (resp, event) = respond(packet, allow, names).expect("an answer");
    (parse(&resp), event)
}

fn answered(addr: Ipv4Addr) -> Parsed {
    Parsed {
        id: 7,
        rcode: 0,
        qdcount: 1,
        ancount: 1,
        addr: Some(addr),
    }
}

fn refused(qdcount: u16) -> Parsed {
    Parsed {
        id: 7,
        rcode: Rcode::Refused as u8,
        qdcount,
        ancount: 0,
        addr: None,
    }
}

fn formerr() -> Parsed {
    Parsed {
        id: 7,
        rcode: Rcode::FormErr as u8,
        qdcount: 0,
        ancount: 0,
        addr: None,
    }
}

#[test]
fn an_allowed_name_gets_an_a_record_of_its_synthetic_address_byte_for_byte() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let q = query(0x1234, "api.example.com", TYPE_A);
    let (resp, event) = respond(&q, &allow, &names).unwrap();
    let mut expected = vec![0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    expected.extend_from_slice(&q[12..]);
    expected.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 127, 77, 0, 1]);
    assert_eq!(resp, expected);
    assert_eq!(
        event,
        QueryEvent {
            name: Some("api.example.com".to_string()),
            qtype: Some(TYPE_A),
            outcome: Outcome::Answered(Ipv4Addr::new(127, 77, 0, 1)),
        }
    );
    assert_eq!(
        names.name_of(Ipv4Addr::new(127, 77, 0, 1)).as_deref(),
        Some("api.example.com")
    );
}

#[test]
fn the_same_name_gets_the_same_address_and_another_name_another() {
    let allow = allowlist(&["a.example.com", "b.example.com:8443"]);
    let names = SyntheticNames::new(16);
    let (first, _) = ask(&query(7, "a.example.com", TYPE_A), &allow, &names);
    let (again, _) = ask(&query(7, "a.example.com", TYPE_A), &allow, &names);
    let (other, _) = ask(&query(7, "b.example.com", TYPE_A), &allow, &names);
    assert_eq!(first, answered(Ipv4Addr::new(127, 77, 0, 1)));
    assert_eq!(again, first);
    assert_eq!(other, answered(Ipv4Addr::new(127, 77, 0, 2)));
}

#[test]
fn names_are_matched_case_insensitively() {
    let allow = allowlist(&["API.Example.com"]);
    let names = SyntheticNames::new(16);
    let (upper, event) = ask(&query(7, "API.EXAMPLE.COM", TYPE_A), &allow, &names);
    let (lower, _) = ask(&query(7, "api.example.com", TYPE_A), &allow, &names);
    let (mixed, _) = ask(&query(7, "aPi.ExAmPlE.cOm", TYPE_A), &allow, &names);
    assert_eq!(upper, answered(Ipv4Addr::new(127, 77, 0, 1)));
    assert_eq!(lower, upper);
    assert_eq!(mixed, upper);
    assert_eq!(event.name.as_deref(), Some("api.example.com"));
    assert_eq!(names.len(), 1);
}

#[test]
fn a_wildcard_answers_subdomains_but_not_the_apex() {
    let allow = allowlist(&["*.example.com"]);
    let names = SyntheticNames::new(16);
    assert_eq!(
        ask(&query(7, "a.example.com", TYPE_A), &allow, &names).0,
        answered(Ipv4Addr::new(127, 77, 0, 1))
    );
    assert_eq!(
        ask(&query(7, "x.y.example.com", TYPE_A), &allow, &names).0,
        answered(Ipv4Addr::new(127, 77, 0, 2))
    );
    let (apex, event) = ask(&query(7, "example.com", TYPE_A), &allow, &names);
    assert_eq!(apex, refused(1));
    assert_eq!(event.outcome, Outcome::Refused(Refusal::NameNotAllowed));
    assert_eq!(ask(&query(7, "badexample.com", TYPE_A), &allow, &names).0, refused(1));
    assert_eq!(names.len(), 2);
}

#[test]
fn names_not_on_the_allowlist_are_refused_and_get_no_address() {
    let allow = allowlist(&["api.example.com", "203.0.113.9", "10.0.0.0/8", "127.0.0.1:8080"]);
    let names = SyntheticNames::new(16);
    for name in [
        "other.example.com",
        "example.com",
        "sub.api.example.com",
        "api.example.com.evil.test",
        "com",
        "",
        // Address rules are not names, whatever spelling the query uses.
        "203.0.113.9",
        "127.0.0.1",
        "10.1.2.3",
        "localhost",
    ] {
        let (resp, event) = ask(&query(7, name, TYPE_A), &allow, &names);
        assert_eq!(resp, refused(1), "{name}");
        assert_eq!(event.outcome, Outcome::Refused(Refusal::NameNotAllowed), "{name}");
        assert_eq!(event.qtype, Some(TYPE_A));
    }
    assert!(names.is_empty());
}

#[test]
fn an_empty_allowlist_refuses_everything() {
    let names = SyntheticNames::new(16);
    let (resp, _) = ask(&query(7, "example.com", TYPE_A), &Allowlist::new(), &names);
    assert_eq!(resp, refused(1));
}

#[test]
fn aaaa_of_an_allowed_name_is_nodata_and_of_another_name_refused() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let (resp, event) = ask(&query(7, "api.example.com", TYPE_AAAA), &allow, &names);
    assert_eq!(
        resp,
        Parsed {
            id: 7,
            rcode: 0,
            qdcount: 1,
            ancount: 0,
            addr: None
        }
    );
    assert_eq!(event.outcome, Outcome::NoData);
    assert_eq!(event.qtype, Some(TYPE_AAAA));
    assert_eq!(
        ask(&query(7, "other.example.com", TYPE_AAAA), &allow, &names).0,
        refused(1)
    );
}

#[test]
fn other_types_and_classes_are_refused_even_for_allowed_names() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    for qtype in [TYPE_MX, TYPE_TXT, TYPE_HTTPS, TYPE_ANY, 0, 2, 5, 12, 33, 65535] {
        let (resp, event) = ask(&query(7, "api.example.com", qtype), &allow, &names);
        assert_eq!(resp, refused(1), "type {qtype}");
        assert_eq!(event.outcome, Outcome::Refused(Refusal::TypeNotServed));
        assert_eq!(event.qtype, Some(qtype));
    }
    for qclass in [CLASS_CH, 0, 4, 255] {
        let (resp, _) = ask(&query_class(7, "api.example.com", TYPE_A, qclass), &allow, &names);
        assert_eq!(resp, refused(1), "class {qclass}");
    }
    assert!(names.is_empty());
}

#[test]
fn opcodes_other_than_query_are_refused_with_the_opcode_echoed() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    for opcode in 1u16..16 {
        let mut q = query(7, "api.example.com", TYPE_A);
        q[2] |= (opcode << 3) as u8;
        let (resp, event) = respond(&q, &allow, &names).unwrap();
        assert_eq!(parse(&resp), refused(0), "opcode {opcode}");
        assert_eq!((u16::from_be_bytes([resp[2], resp[3]]) >> 11) & 0xf, opcode);
        assert_eq!(event.outcome, Outcome::Refused(Refusal::NotAQuery));
    }
    assert!(names.is_empty());
}

#[test]
fn question_counts_other_than_one_are_refused_or_formerr() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let mut two = query(7, "api.example.com", TYPE_A);
    two[5] = 2;
    let q = query(7, "api.example.com", TYPE_A);
    two.extend_from_slice(&q[12..]);
    let (resp, event) = ask(&two, &allow, &names);
    assert_eq!(resp, refused(0));
    assert_eq!(event.outcome, Outcome::Refused(Refusal::QuestionCount));
    let mut none = q.clone();
    none[5] = 0;
    let (resp, event) = ask(&none, &allow, &names);
    assert_eq!(resp, formerr());
    assert_eq!(event.outcome, Outcome::FormErr);
    assert_eq!(ask(&header(7, 0, 0), &allow, &names).0, formerr());
    assert!(names.is_empty());
}

#[test]
fn responses_and_datagrams_shorter_than_a_header_get_no_answer() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let mut response = query(7, "api.example.com", TYPE_A);
    response[2] |= 0x80;
    assert!(respond(&response, &allow, &names).is_none());
    let q = query(7, "api.example.com", TYPE_A);
    for len in 0..12 {
        assert!(respond(&q[..len], &allow, &names).is_none(), "{len} bytes");
    }
    assert!(names.is_empty());
}

#[test]
fn every_truncation_of_a_question_is_formerr() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let q = query(7, "api.example.com", TYPE_A);
    for len in 12..q.len() {
        assert_eq!(ask(&q[..len], &allow, &names).0, formerr(), "{len} bytes");
    }
    assert_eq!(ask(&q, &allow, &names).0, answered(Ipv4Addr::new(127, 77, 0, 1)));
}

#[test]
fn compression_pointers_in_the_question_are_formerr_loops_included() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let tail = [0, 1, 0, 1];
    // A pointer to itself (offset 12): a loop if followed.
    let mut to_itself = header(7, 0x0100, 1);
    to_itself.extend_from_slice(&[0xc0, 12]);
    to_itself.extend_from_slice(&tail);
    // A label, then a pointer back to the label: a loop too.
    let mut back = header(7, 0x0100, 1);
    back.extend_from_slice(&[3, b'a', b'p', b'i', 0xc0, 12]);
    back.extend_from_slice(&tail);
    // A pointer forward to a plausible name further on.
    let mut forward = header(7, 0x0100, 1);
    forward.extend_from_slice(&[0xc0, 18]);
    forward.extend_from_slice(&tail);
    forward.extend_from_slice(&[3, b'a', b'p', b'i', 7]);
    forward.extend_from_slice(b"example");
    forward.extend_from_slice(&[3, b'c', b'o', b'm', 0]);
    // A pointer into the header.
    let mut into_header = header(7, 0x0100, 1);
    into_header.extend_from_slice(&[0xc0, 0]);
    into_header.extend_from_slice(&tail);
    for (what, packet) in [
        ("to itself", to_itself),
        ("back", back),
        ("forward", forward),
        ("into the header", into_header),
    ] {
        assert_eq!(ask(&packet, &allow, &names).0, formerr(), "{what}");
    }
    assert!(names.is_empty());
}

#[test]
fn reserved_label_types_and_long_labels_are_formerr() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    for first in [0x40u8, 0x41, 0x7f, 0x80, 0xbf] {
        let mut p = header(7, 0x0100, 1);
        p.push(first);
        p.extend_from_slice(&[b'a'; 200]);
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(ask(&p, &allow, &names).0, formerr(), "label byte {first:#x}");
    }
    let long = [b'a'; 64];
    assert_eq!(
        ask(&query_labels(7, &[&long, b"com"], TYPE_A, CLASS_IN), &allow, &names).0,
        formerr()
    );
    let longest = [b'a'; 63];
    assert_eq!(
        ask(&query_labels(7, &[&longest, b"com"], TYPE_A, CLASS_IN), &allow, &names).0,
        refused(1)
    );
}

#[test]
fn names_up_to_255_wire_bytes_are_read_and_longer_ones_are_formerr() {
    // Four labels of 63 and one of 1: 4 * 64 + 2 + 1 = 259 wire bytes, too long.
    let l63 = [b'a'; 63];
    let too_long = query_labels(7, &[&l63, &l63, &l63, &l63, b"b"], TYPE_A, CLASS_IN);
    // 63, 63, 63, 61: 64 * 3 + 62 + 1 = 255 wire bytes, 253 characters: the longest name.
    let l61 = [b'c'; 61];
    let longest = query_labels(7, &[&l63, &l63, &l63, &l61], TYPE_A, CLASS_IN);
    let longest_text = format!(
        "{0}.{0}.{0}.{1}",
        std::str::from_utf8(&l63).unwrap(),
        std::str::from_utf8(&l61).unwrap()
    );
    assert_eq!(longest_text.len(), 253);
    let allow = allowlist(&[&longest_text]);
    let names = SyntheticNames::new(16);
    assert_eq!(ask(&too_long, &allow, &names).0, formerr());
    let (resp, event) = respond(&longest, &allow, &names).unwrap();
    assert_eq!(parse(&resp), answered(Ipv4Addr::new(127, 77, 0, 1)));
    assert_eq!(resp.len(), MAX_RESPONSE_BYTES, "the longest question plus an answer");
    assert_eq!(event.name.as_deref(), Some(longest_text.as_str()));
}

#[test]
fn a_dot_or_odd_bytes_inside_a_label_never_pass_for_an_allowed_name() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let (resp, event) = ask(
        &query_labels(7, &[b"api.example", b"com"], TYPE_A, CLASS_IN),
        &allow,
        &names,
    );
    assert_eq!(resp, refused(1));
    assert_eq!(event.name.as_deref(), Some("api\\046example.com"));
    let (resp, event) = ask(
        &query_labels(7, &[b"api", b"exa\xffmple", b"com"], TYPE_A, CLASS_IN),
        &allow,
        &names,
    );
    assert_eq!(resp, refused(1));
    assert_eq!(event.name.as_deref(), Some("api.exa\\255mple.com"));
    let (resp, event) = ask(
        &query_labels(7, &[b"*", b"example", b"com"], TYPE_A, CLASS_IN),
        &allow,
        &names,
    );
    assert_eq!(resp, refused(1));
    assert_eq!(event.name.as_deref(), Some("\\042.example.com"));
    let (_, event) = ask(&query_labels(7, &[], TYPE_A, CLASS_IN), &allow, &names);
    assert_eq!(event.name.as_deref(), Some("."));
    assert!(names.is_empty());
}

#[test]
fn an_edns_opt_record_after_the_question_is_ignored() {
    let allow = allowlist(&["api.example.com"]);
    let names = SyntheticNames::new(16);
    let mut q = query(7, "api.example.com", TYPE_A);
    q[11] = 1; // ARCOUNT
    // Root name, type OPT (41), UDP size 1232, extended rcode and flags, no data.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    let (resp, _) = respond(&q, &allow, &names).unwrap();
    assert_eq!(parse(&resp), answered(Ipv4Addr::new(127, 77, 0, 1)));
    // The response carries no additional record.
    assert_eq!(&resp[10..12], &[0, 0]);
}

#[test]
fn a_full_name_table_refuses_new_names_and_still_answers_old_ones() {
    let allow = allowlist(&["*.example.com"]);
    let names = SyntheticNames::new(2);
    assert_eq!(
        ask(&query(7, "a.example.com", TYPE_A), &allow, &names).0,
        answered(Ipv4Addr::new(127, 77, 0, 1))
    );
    assert_eq!(
        ask(&query(7, "b.example.com", TYPE_A), &allow, &names).0,
        answered(Ipv4Addr::new(127, 77, 0, 2))
    );
    let (resp, event) = ask(&query(7, "c.example.com", TYPE_A), &allow, &names);
    assert_eq!(resp, refused(1));
    assert_eq!(event.outcome, Outcome::Refused(Refusal::TooManyNames));
    assert_eq!(
        ask(&query(7, "a.example.com", TYPE_A), &allow, &names).0,
        answered(Ipv4Addr::new(127, 77, 0, 1))
    );
}

#[test]
fn arbitrary_bytes_never_panic_and_every_answer_is_well_formed() {
    let allow = allowlist(&["*.example.com", "a.b"]);
    let names = SyntheticNames::new(64);
    // A deterministic xorshift stream, biased towards small label lengths and the
    // interesting header bytes so that many packets get past the header.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..200_000 {
        let len = (next() % 80) as usize;
        let mut p: Vec<u8> = (0..len)
            .map(|_| match next() % 8 {
                0 => 0,
                1 => 1,
                2 => (next() % 8) as u8,
                3 => b'a',
                4 => 0xc0,
                _ => next() as u8,
            })
            .collect();
        if p.len() > 5 && next() % 2 == 0 {
            p[2] &= 0x07; // a query, opcode 0
            p[4] = 0;
            p[5] = 1;
        }
        if let Some((resp, event)) = respond(&p, &allow, &names) {
            let parsed = parse(&resp);
            assert_eq!(&resp[..2], &p[..2], "the id is echoed");
            if let Outcome::Answered(addr) = event.outcome {
                assert_eq!(parsed.addr, Some(addr));
                assert!(crate::names::in_block(addr));
                assert_eq!(names.name_of(addr), event.name);
            } else {
                assert_eq!(parsed.ancount, 0);
            }
        }
    }
}

#[test]
fn the_rate_limit_answers_the_budget_then_reports_once_then_drops_until_the_next_second() {
    let mut budget = QueryBudget::new(3);
    let start = Instant::now();
    let at = |ms| start + Duration::from_millis(ms);
    assert_eq!(budget.admit(at(0)), Admit::Yes);
    assert_eq!(budget.admit(at(10)), Admit::Yes);
    assert_eq!(budget.admit(at(20)), Admit::Yes);
    assert_eq!(budget.admit(at(30)), Admit::FirstRefused);
    assert_eq!(budget.admit(at(40)), Admit::No);
    assert_eq!(budget.admit(at(999)), Admit::No);
    assert_eq!(budget.admit(at(1000)), Admit::Yes);
    assert_eq!(budget.admit(at(1001)), Admit::Yes);
    assert_eq!(budget.admit(at(1002)), Admit::Yes);
    assert_eq!(budget.admit(at(1003)), Admit::FirstRefused);
}

// The stub on a real UDP socket, all on loopback, every wait bounded.

struct Stub {
    addr: std::net::SocketAddr,
    client: UdpSocket,
    names: SyntheticNames,
    events: Arc<Mutex<Vec<QueryEvent>>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const WAIT: Duration = Duration::from_secs(5);

async fn start(rules: &[&str]) -> Stub {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let names = SyntheticNames::new(16);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let task = tokio::spawn(serve_dns(
        socket,
        Arc::new(allowlist(rules)),
        names.clone(),
        move |e: &QueryEvent| sink.lock().unwrap().push(e.clone()),
    ));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    Stub {
        addr,
        client,
        names,
        events,
        task,
    }
}

impl Stub {
    async fn ask(&self, packet: &[u8]) -> Vec<u8> {
        self.client.send_to(packet, self.addr).await.unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(WAIT, self.client.recv_from(&mut buf))
            .await
            .expect("the stub answers within 5 s")
            .unwrap();
        assert_eq!(from, self.addr);
        buf[..n].to_vec()
    }
}

#[tokio::test]
async fn over_udp_an_allowed_name_gets_the_same_synthetic_address_twice() {
    let stub = start(&["api.example.com"]).await;
    let first = parse(&stub.ask(&query(7, "api.example.com", TYPE_A)).await);
    let second = parse(&stub.ask(&query(8, "api.example.com", TYPE_A)).await);
    let addr = Ipv4Addr::new(127, 77, 0, 1);
    assert_eq!(first, answered(addr));
    assert_eq!(
        second,
        Parsed {
            id: 8,
            ..answered(addr)
        }
    );
    // The supervisor side of the map sees the name behind the address.
    assert_eq!(stub.names.name_of(addr).as_deref(), Some("api.example.com"));
    let events = stub.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.outcome == Outcome::Answered(addr)));
}

#[tokio::test]
async fn over_udp_a_wildcard_answers_subdomains_not_the_apex() {
    let stub = start(&["*.example.com:8443"]).await;
    assert_eq!(
        parse(&stub.ask(&query(7, "a.example.com", TYPE_A)).await),
        answered(Ipv4Addr::new(127, 77, 0, 1))
    );
    assert_eq!(parse(&stub.ask(&query(7, "example.com", TYPE_A)).await), refused(1));
}

#[tokio::test]
async fn over_udp_other_names_are_refused_and_aaaa_is_nodata() {
    let stub = start(&["api.example.com"]).await;
    assert_eq!(parse(&stub.ask(&query(7, "evil.test", TYPE_A)).await), refused(1));
    assert_eq!(
        parse(&stub.ask(&query(7, "api.example.com", TYPE_AAAA)).await),
        Parsed {
            id: 7,
            rcode: 0,
            qdcount: 1,
            ancount: 0,
            addr: None
        }
    );
    assert!(stub.names.is_empty());
    let events = stub.events.lock().unwrap().clone();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.name.as_deref(), e.outcome))
            .collect::<Vec<_>>(),
        [
            (Some("evil.test"), Outcome::Refused(Refusal::NameNotAllowed)),
            (Some("api.example.com"), Outcome::NoData)
        ]
    );
}

#[tokio::test]
async fn over_udp_names_are_case_insensitive() {
    let stub = start(&["api.example.com"]).await;
    let addr = Ipv4Addr::new(127, 77, 0, 1);
    assert_eq!(
        parse(&stub.ask(&query(7, "API.Example.COM", TYPE_A)).await),
        answered(addr)
    );
    assert_eq!(
        parse(&stub.ask(&query(7, "api.example.com", TYPE_A)).await),
        answered(addr)
    );
}

#[tokio::test]
async fn over_udp_garbage_gets_formerr_or_nothing_and_the_stub_keeps_serving() {
    let stub = start(&["api.example.com"]).await;
    // Too short for a header: no answer; then a truncated question: FORMERR.
    stub.client.send_to(&[1, 2, 3], stub.addr).await.unwrap();
    let q = query(7, "api.example.com", TYPE_A);
    assert_eq!(parse(&stub.ask(&q[..20]).await), formerr());
    assert_eq!(parse(&stub.ask(&q).await), answered(Ipv4Addr::new(127, 77, 0, 1)));
    assert!(!stub.task.is_finished());
}

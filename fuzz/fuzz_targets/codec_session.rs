//! Fuzz target: arbitrary bytes through the line codec (split at fuzzer-chosen points)
//! and every resulting frame through validation and the session, alternating directions.
//!
//! Run with `cargo fuzz run codec_session` (nightly). On stable, `cargo build` compiles it
//! (CI does that); `cargo run --features stdin-main -- < file` replays one input.

#![cfg_attr(not(feature = "stdin-main"), no_main)]

use mcp_j_proxy::codec::{Frame, LineCodec};
use mcp_j_proxy::session::{Payload, Session};
use mcp_j_proxy::{ProxyConfig, ServerRequestPolicy, ToolPolicy, message};

fn check(payload: &Option<Payload>, original: &[u8]) {
    if let Some(p) = payload {
        let bytes = p.bytes(original);
        assert!(!bytes.contains(&b'\n'), "outgoing message spans lines");
    }
}

fn one(data: &[u8]) {
    // First byte: settings; second: split stride. The rest: the stream.
    let (settings, rest) = data.split_first().unwrap_or((&0, &[]));
    let (stride, stream) = rest.split_first().unwrap_or((&0, &[]));
    let limit = 64 + usize::from(*settings & 0x3f) * 16;
    let open = settings & 0x40 != 0;
    let config = ProxyConfig {
        max_message_bytes: limit,
        max_depth: 8 + usize::from(settings >> 4),
        tools: if open {
            ToolPolicy::default()
        } else {
            ToolPolicy::new(["a", "echo"], ["secret"])
        },
        server_requests: if settings & 0x80 != 0 {
            ServerRequestPolicy::allow_all()
        } else {
            ServerRequestPolicy::default()
        },
        ..ProxyConfig::default()
    };
    let mut codec = LineCodec::new(limit, false);
    let mut session = Session::new(&config);
    let stride = usize::from(*stride).max(1);
    let mut n = 0usize;
    for chunk in stream.chunks(stride) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let (used, frame) = codec.feed(rest);
            assert!(used > 0 && used <= rest.len());
            if let Some(frame) = frame {
                handle(&mut session, &frame, n, limit);
                n += 1;
            }
            rest = &rest[used..];
        }
    }
    if let Some(frame) = codec.finish() {
        handle(&mut session, &frame, n, limit);
    }
    assert!(codec.peak_capacity() <= limit);
    for (reply, _) in session.server_closed() {
        assert!(!reply.contains(&b'\n'));
    }
}

fn handle(session: &mut Session, frame: &Frame<'_>, n: usize, limit: usize) {
    let line: &[u8] = match frame {
        Frame::Line(l) => {
            assert!(l.len() <= limit, "frame over the limit");
            let _ = message::parse(l, 16);
            l
        }
        Frame::Oversize { head, len } => {
            assert!(head.is_empty() && *len > limit as u64);
            &[]
        }
    };
    let out = if n % 2 == 0 {
        session.client_frame(frame)
    } else {
        session.server_frame(frame)
    };
    check(&out.to_client, line);
    check(&out.to_server, line);
}

#[cfg(not(feature = "stdin-main"))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| one(data));

#[cfg(feature = "stdin-main")]
fn main() {
    use std::io::Read;
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).expect("read stdin");
    one(&data);
}

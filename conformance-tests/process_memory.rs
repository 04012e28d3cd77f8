//! Attachment content streams through the server in bounded memory
//! (issue: "memory use must not grow with the attachment size beyond one
//! configurable buffer"). The server runs as its own process so that its
//! anonymous memory (heap, not the page cache of the files it writes) can
//! be watched from outside while a large attachment goes in and comes out.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cli::{serve_with_env, sigterm, wait_exit};
use crate::helpers::*;

const MIB: usize = 1024 * 1024;
/// Large enough that holding it would dwarf everything else the server holds.
const CONTENT_MIB: usize = 160;
const BOUNDARY: &str = "memory-test-boundary";

/// Mebibyte `i` of the content: a fixed pseudo-random block stamped with `i`.
fn block(i: usize, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    b[..8].copy_from_slice(&(i as u64).to_le_bytes());
    b
}

fn base_block() -> Vec<u8> {
    (0..MIB).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect()
}

/// The request body, generated as it is sent.
struct Upload {
    pieces: std::vec::IntoIter<Vec<u8>>,
    blocks: std::ops::Range<usize>,
    tail: Vec<u8>,
    base: Vec<u8>,
    current: std::io::Cursor<Vec<u8>>,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let next = match self.pieces.next() {
                Some(head) => head,
                None => match self.blocks.next() {
                    Some(i) => block(i, &self.base),
                    None if !self.tail.is_empty() => std::mem::take(&mut self.tail),
                    None => return Ok(0),
                },
            };
            self.current = std::io::Cursor::new(next);
        }
    }
}

fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples the server's anonymous memory until dropped; `peak` is the highest seen.
struct Watch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(pid: u32) -> Watch {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_anon_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Watch { stop, peak, thread: Some(thread) }
    }

    fn peak_kib(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

#[test]
fn a_large_attachment_streams_through_bounded_memory() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc: the memory of the server cannot be watched here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("memory.db").display());
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let env = [
        ("XLRS_ATTACHMENT_BUFFER_BYTES", "65536"),
        ("XLRS_MAX_ATTACHMENT_BYTES", "1073741824"),
        ("XLRS_SPOOL_DIR", spool.to_str().unwrap()),
        ("XLRS_WORKERS", "1"),
    ];
    let mut served = serve_with_env(&url, Some(("mem", "mem-secret")), &env);
    let endpoint = format!("http://127.0.0.1:{}/xapi/statements", served.port);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let request = |method: reqwest::Method, url: &str| {
        client.request(method, url).header("X-Experience-API-Version", VERSION).basic_auth("mem", Some("mem-secret"))
    };

    let base = base_block();
    let mut hasher = Sha256::new();
    (0..CONTENT_MIB).for_each(|i| hasher.update(block(i, &base)));
    let sha2: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let id = uuid();
    let mut s = statement();
    s["id"] = json!(id);
    s["attachments"] = json!([{
        "usageType": "http://example.com/attachment-usage/recording",
        "display": {"en-US": "A recording"},
        "contentType": "video/mp4",
        "length": CONTENT_MIB * MIB,
        "sha2": sha2
    }]);
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{s}\r\n--{BOUNDARY}\r\nContent-Type: video/mp4\r\nX-Experience-API-Hash: {sha2}\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n").into_bytes();
    let length = (head.len() + CONTENT_MIB * MIB + tail.len()) as u64;

    // Warm up (credential check, connections), then measure from here.
    let res = request(reqwest::Method::GET, &format!("{endpoint}?limit=1")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let pid = served.child.id();
    let baseline = rss_anon_kib(pid);

    let watch = Watch::start(pid);
    let upload = Upload {
        pieces: vec![head.into_bytes()].into_iter(),
        blocks: 0..CONTENT_MIB,
        tail,
        base: base.clone(),
        current: std::io::Cursor::new(Vec::new()),
    };
    let res = request(reqwest::Method::POST, &endpoint)
        .header("Content-Type", format!("multipart/mixed; boundary={BOUNDARY}"))
        .body(reqwest::blocking::Body::sized(upload, length))
        .send()
        .unwrap();
    let status = res.status();
    assert_eq!(status, StatusCode::OK, "{}", res.text().unwrap_or_default());
    let upload_peak = watch.peak_kib();
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "the spool file has no name and leaves nothing");

    let watch = Watch::start(pid);
    let mut res =
        request(reqwest::Method::GET, &format!("{endpoint}?statementId={id}&attachments=true")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Hash the response as it streams: the content sits between its part's
    // blank line and the closing delimiter.
    let closing = format!("\r\n--{}--\r\n", boundary_of(&res));
    let marker = format!("X-Experience-API-Hash: {sha2}\r\n\r\n");
    let (mut seen, mut held, mut hasher, mut received) = (Vec::new(), Vec::new(), Sha256::new(), 0u64);
    let mut in_content = false;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = res.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if !in_content {
            seen.extend_from_slice(&buf[..n]);
            match find(&seen, marker.as_bytes()) {
                Some(at) => {
                    held = seen.split_off(at + marker.len());
                    in_content = true;
                }
                None => assert!(seen.len() < 64 * 1024, "no attachment part in the first 64 KiB"),
            }
            continue;
        }
        held.extend_from_slice(&buf[..n]);
        let keep = held.len().saturating_sub(closing.len());
        hasher.update(&held[..keep]);
        received += keep as u64;
        held.drain(..keep);
    }
    let download_peak = watch.peak_kib();
    assert_eq!(held, closing.as_bytes(), "the response ends with the closing delimiter");
    assert_eq!(received, (CONTENT_MIB * MIB) as u64);
    assert_eq!(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>(), sha2);

    sigterm(&served.child);
    wait_exit(&mut served.child);
    let growth_mib = |peak: u64| peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "server anonymous memory: baseline {} MiB, upload peak +{} MiB, download peak +{} MiB ({CONTENT_MIB} MiB attachment)",
        baseline / 1024,
        growth_mib(upload_peak),
        growth_mib(download_peak)
    );
    // Bounded: buffers, SQLite's page cache (16 MiB per connection) and
    // allocator slack, not the content.
    for (what, peak) in [("upload", upload_peak), ("download", download_peak)] {
        assert!(growth_mib(peak) < (CONTENT_MIB / 4) as u64, "{what} grew the server by {} MiB", growth_mib(peak));
    }
}

fn boundary_of(res: &reqwest::blocking::Response) -> String {
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    ct.split("boundary=").nth(1).expect("a boundary").trim_matches('"').to_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

//! A minute-long outage: one target answers 503, another 429, both with
//! `Retry-After`, while statements keep coming in. Ingest goes on; no
//! attempt comes sooner than the target asked; afterwards all is delivered.

use std::time::Instant;

use super::*;
use crate::simulators::Recorded;

const OUTAGE: Duration = Duration::from_secs(60);

forwarding_test!(a_minute_of_503_and_429_then_everything_arrives);
async fn a_minute_of_503_and_429_then_everything_arrives(backend: Backend) {
    let lrs = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let hook = Simulator::start(Receiver::new("hook-secret"));
    let config = format!(
        r#"
        {}
        [[forwarder]]
        name = "hook"
        kind = "webhook"
        url = "{}/hook"
        secret = {{ file = "$DIR/hook" }}
        delivery = {{ retry_base_ms = 100, rate_per_sec = 50.0 }}
        "#,
        lrs_target("backup", &lrs.url, "delivery = { retry_base_ms = 100, batch_size = 20 }"),
        hook.url
    );
    let mut secrets = LRS_SECRETS.to_vec();
    secrets.push(("hook", "hook-secret"));
    let Some(f) = Forwarding::start(backend, &config, &secrets).await else { return };
    lrs.fail(503, Some(7), OUTAGE);
    hook.fail(429, Some(4), OUTAGE);
    let start = Instant::now();
    let mut ids = Vec::new();
    // Ingest carries on through the outage (each store asserts a 200).
    while start.elapsed() < OUTAGE {
        let batch: Vec<Value> = (0..3).map(|_| statement()).collect();
        ids.extend(f.app.store(&json!(batch)).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let delivered = |n: usize| n == ids.len();
    // A minute's backlog, at the webhook's rate halved by the 429s.
    assert!(lrs.wait_until(Duration::from_secs(60), |l| delivered(l.count())).await, "LRS: {}", lrs.behaviour.count());
    assert!(
        hook.wait_until(Duration::from_secs(60), |h| delivered(h.count())).await,
        "hook: {}",
        hook.behaviour.count()
    );
    let stored = lrs.behaviour.stored.lock().unwrap().clone();
    assert!(ids.iter().all(|id| stored.contains_key(id)));
    assert_eq!(*hook.behaviour.bad_signatures.lock().unwrap(), 0);
    for (name, requests, status, asked) in [
        ("backup", lrs.requests(), 503, Duration::from_secs(7)),
        ("hook", hook.requests(), 429, Duration::from_secs(4)),
    ] {
        let refused = requests.iter().filter(|r| r.status == status).count();
        // Only probes, one per Retry-After: not one per row or per backoff step.
        let most = (OUTAGE.as_secs_f64() / asked.as_secs_f64()).ceil() as usize + 1;
        assert!((5..=most).contains(&refused), "{name}: {refused} refusals, at most {most} expected");
        assert_respected(name, &requests, status, asked);
    }
    let settled = f.settled().await;
    assert_eq!(
        settled,
        vec![
            ("backup".to_owned(), Status::Succeeded, ids.len() as i64),
            ("hook".to_owned(), Status::Succeeded, ids.len() as i64)
        ]
    );
}

/// No request followed a refusal sooner than the `Retry-After` it carried.
fn assert_respected(name: &str, requests: &[Recorded], status: u16, asked: Duration) {
    for pair in requests.windows(2) {
        if pair[0].status == status {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= asked - Duration::from_millis(20),
                "{name}: asked to wait {asked:?}, came back after {gap:?}"
            );
        }
    }
}

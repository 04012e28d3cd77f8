//! Statements with attachments forwarded to another LRS (a second xlrs):
//! content without a `fileUrl` goes along as `multipart/mixed`, and the
//! receiver stores it under the same sha2.

use super::*;
use crate::admin::base;
use crate::attachments::{declare, get_multipart, post_multipart, request_body, sha256_hex, with_attachments};

forwarding_test!(attachments_reach_the_other_lrs_with_their_content);
async fn attachments_reach_the_other_lrs_with_their_content(backend: Backend) {
    let Some(receiver) = spawn_app(backend).await else { return };
    let config = lrs_target("backup", &base(&receiver), "");
    let secrets = [("lrs-user", ADMIN_KEY), ("lrs-password", ADMIN_SECRET)];
    let Some(f) = Forwarding::start(backend, &config, &secrets).await else { return };
    // Larger than a stored chunk (64 KiB), so it is read back in several.
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut remote = declare(b"kept elsewhere", "text/plain", 2);
    remote["fileUrl"] = json!("https://files.example.com/b.txt");
    let id = uuid();
    let statement = with_attachments(&id, vec![declare(&content, "application/octet-stream", 1), remote]);
    let plain = statement_with_id();
    let batch = json!([statement, plain.clone()]);
    let (status, answer) =
        post_multipart(&f.app, request_body(&batch, &[(&content, "application/octet-stream")])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let plain_id = plain["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    for wanted in [&id, plain_id] {
        while receiver.get_statements(&format!("statementId={wanted}")).await.0 != StatusCode::OK
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (_, parts) = get_multipart(&receiver, &format!("statementId={id}&attachments=true")).await;
    let sent: Vec<&Vec<u8>> = parts[1..].iter().map(|p| &p.content).collect();
    assert_eq!(sent, [&content], "the content, and none for the fileUrl attachment");
    assert_eq!(parts[1].header("X-Experience-API-Hash"), Some(sha256_hex(&content).as_str()));
    let stored = receiver.statement(&id).await;
    assert_eq!(stored["attachments"][0]["sha2"], sha256_hex(&content));
    assert_eq!(receiver.statement(plain_id).await["id"], plain_id, "the statement without attachments too");
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 2)]);
}

fn statement_with_id() -> Value {
    let mut s = statement();
    s["id"] = json!(uuid());
    s
}

//! OAuth2 access tokens for the platforms that mint them (LearnWorlds,
//! Docebo, 360Learning), each in its own dialect: cached until a minute
//! before they expire, minted one request at a time, and dropped on a 401 so
//! the call is tried once more with a new one. A second 401 stands, and
//! pauses the target (platforms block addresses after failed logins).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::adapters::probe::TestCall;
use super::adapters::{Channel, read_response};
use super::outcome::{Outcome, classify};

/// How the token request is made and its answer read.
#[derive(Debug, Clone)]
enum Dialect {
    /// JSON body, `Lw-Client` header even here; the answer wrapped in `tokenData`.
    LearnWorlds,
    /// Form fields, `scope=api`; password grant when a user is given.
    Docebo { user: Option<(String, String)> },
    /// JSON body, optional `company_id`.
    Learning360 { company_id: Option<String> },
}

pub struct TokenSource {
    url: String,
    client_id: String,
    client_secret: String,
    dialect: Dialect,
    /// The platform bucket token requests are paced by, beside the target's
    /// own limiter: a renewal storm must not spend the platform's limit.
    bucket: Option<&'static str>,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// A token is renewed this long before it expires.
const EARLY: Duration = Duration::from_secs(60);

impl TokenSource {
    fn new(url: String, client_id: String, client_secret: String, dialect: Dialect) -> TokenSource {
        TokenSource { url, client_id, client_secret, dialect, bucket: None, cached: tokio::sync::Mutex::new(None) }
    }

    /// Token requests also take a token of the platform's `bucket`.
    pub fn paced_by(self, bucket: &'static str) -> TokenSource {
        TokenSource { bucket: Some(bucket), ..self }
    }

    /// `<school>/admin/api/oauth2/access_token`.
    pub fn learnworlds(school_url: &str, client_id: String, client_secret: String) -> TokenSource {
        let url = format!("{}/admin/api/oauth2/access_token", school_url.trim_end_matches('/'));
        TokenSource::new(url, client_id, client_secret, Dialect::LearnWorlds)
    }

    /// `<platform>/oauth2/token`.
    pub fn docebo(url: &str, client_id: String, client_secret: String, user: Option<(String, String)>) -> TokenSource {
        let url = format!("{}/oauth2/token", url.trim_end_matches('/'));
        TokenSource::new(url, client_id, client_secret, Dialect::Docebo { user })
    }

    /// `<host>/api/v2/oauth2/token`.
    pub fn learning360(url: &str, client_id: String, client_secret: String, company_id: Option<String>) -> TokenSource {
        let url = format!("{}/api/v2/oauth2/token", url.trim_end_matches('/'));
        TokenSource::new(url, client_id, client_secret, Dialect::Learning360 { company_id })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A token that has not expired: the cached one, or a new one (minted as
    /// a `follow_up`, see `Channel::send_with`, when renewing after a 401).
    pub async fn token(&self, channel: &Channel, follow_up: bool) -> Result<String, Outcome> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.mint(channel, follow_up).await?;
        *cached = Some((token.clone(), Instant::now() + lifetime.saturating_sub(EARLY).max(Duration::from_secs(5))));
        Ok(token)
    }

    /// Drops `token` if it is still the cached one (a 401 said it is no good).
    pub async fn forget(&self, token: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|(t, _)| t == token) {
            *cached = None;
        }
    }

    /// Sends what `build` makes with a token (in `bucket`); after a 401 once
    /// more with a new token. The answer, or the outcome when there is none.
    pub async fn send(
        &self,
        channel: &Channel,
        bucket: Option<&str>,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, String), Outcome> {
        self.send_with(channel, bucket, false, build).await
    }

    /// `send` as a follow-up (see `Channel::send_with`).
    pub async fn send_follow_up(
        &self,
        channel: &Channel,
        bucket: Option<&str>,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, String), Outcome> {
        self.send_with(channel, bucket, true, build).await
    }

    async fn send_with(
        &self,
        channel: &Channel,
        bucket: Option<&str>,
        follow_up: bool,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, String), Outcome> {
        let mut refreshed = false;
        loop {
            // The 401 stopped the round; the one retry with a new token still goes.
            let follow_up = follow_up || refreshed;
            let token = self.token(channel, follow_up).await?;
            let response =
                channel.send_with(bucket, follow_up, build(&token)).await.map_err(|e| Outcome::network(&e))?;
            let answer = read_response(response).await;
            if answer.0 == StatusCode::UNAUTHORIZED && !refreshed {
                self.forget(&token).await;
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// The token request: a test call (`forward test`) makes it and nothing else.
    pub fn test_call(&self, client: &reqwest::Client) -> TestCall {
        TestCall::new(reqwest::Method::POST, &self.url, self.token_request(client)).in_bucket(self.bucket)
    }

    fn token_request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        match &self.dialect {
            Dialect::LearnWorlds => client.post(&self.url).header("Lw-Client", &self.client_id).json(&json!({
                "client_id": self.client_id, "client_secret": self.client_secret, "grant_type": "client_credentials"
            })),
            Dialect::Docebo { user } => {
                let mut form = vec![
                    ("client_id", self.client_id.as_str()),
                    ("client_secret", self.client_secret.as_str()),
                    ("scope", "api"),
                ];
                match user {
                    Some((name, password)) => {
                        form.extend([("grant_type", "password"), ("username", name), ("password", password)])
                    }
                    None => form.push(("grant_type", "client_credentials")),
                }
                let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
                client.post(&self.url).header("Content-Type", "application/x-www-form-urlencoded").body(body)
            }
            Dialect::Learning360 { company_id } => {
                let mut body = json!({"grant_type": "client_credentials", "client_id": self.client_id,
                                      "client_secret": self.client_secret});
                if let Some(company) = company_id {
                    body["company_id"] = json!(company);
                }
                client.post(&self.url).json(&body)
            }
        }
    }

    async fn mint(&self, channel: &Channel, follow_up: bool) -> Result<(String, Duration), Outcome> {
        let request = self.token_request(&channel.client);
        let response = channel.send_with(self.bucket, follow_up, request).await.map_err(|e| Outcome::network(&e))?;
        let (status, headers, text) = read_response(response).await;
        match classify(status, &headers, &text) {
            Outcome::Delivered { .. } => {}
            // Refused client credentials do not mend by themselves.
            Outcome::Dead { http_status, reason } | Outcome::PauseTarget { http_status, reason } => {
                return Err(Outcome::PauseTarget { http_status, reason: format!("token refused: {reason}") });
            }
            other => return Err(other),
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let data = match self.dialect {
            Dialect::LearnWorlds => &answer["tokenData"],
            _ => &answer,
        };
        let token = data["access_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| Outcome::Retry {
            http_status: Some(status.as_u16()),
            error: "the token answer has no access_token".into(),
            after: None,
            throttled: false,
        })?;
        let lifetime = Duration::from_secs(data["expires_in"].as_u64().unwrap_or(3600));
        Ok((token.to_owned(), lifetime))
    }
}

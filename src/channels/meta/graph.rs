//! The Meta Graph API client: the Send API and the User Profile API, over HTTP to `GRAPH_API_BASE`, with
//! `appsecret_proof` on every call and Meta's error codes sorted into what to do about them.

use std::time::Duration;

use crate::kernel::{PageId, Psid};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

/// What to do after a Send API error (messenger.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Temporary (1200, 2, 4, 613, 5xx, network): retry with backoff.
    Retry,
    /// Outside the messaging window (10/2018278, 10/2534022): never retry.
    OutsideWindow,
    /// The person cannot be reached (551, 200/1545041, 100/2018001, 10/2018108): never retry.
    Unreachable,
    /// The Page token is invalid (190): stop sending for this Page until it is reconnected.
    TokenBroken,
    /// A request we got wrong, or a policy refusal: never retry.
    Permanent,
}

/// A failed Graph call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// Meta answered with an error body.
    #[error("Graph API error {code}/{subcode}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: i64,
        /// `error.error_subcode` (0 when absent).
        subcode: i64,
        /// `error.message`.
        message: String,
    },
    /// No usable answer (connection, timeout, unreadable body).
    #[error("Graph API unreachable: {0}")]
    Transport(String),
}

impl GraphError {
    /// Sorts the error by what to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            GraphError::Transport(_) => ErrorClass::Retry,
            GraphError::Api {
                status,
                code,
                subcode,
                ..
            } => match (code, subcode) {
                // WhatsApp (whatsapp.md §2.9): 131047 re-engagement (the 24 hours passed), 131026
                // undeliverable, 130429 throughput and 131056 pair rate limits.
                (10, 2018278) | (10, 2534022) | (131047, _) => ErrorClass::OutsideWindow,
                (551, _) | (200, 1545041) | (100, 2018001) | (10, 2018108) | (131026, _) => {
                    ErrorClass::Unreachable
                }
                (190, _) => ErrorClass::TokenBroken,
                (1200, _) | (2, _) | (4, _) | (613, _) | (130429, _) | (131056, _) => ErrorClass::Retry,
                _ if *status >= 500 => ErrorClass::Retry,
                _ => ErrorClass::Permanent,
            },
        }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: i64,
}

/// A Send API answer (`message_id`), or the Cloud API's (`messages[0].id`, a `wamid.`).
#[derive(Deserialize)]
struct SendOk {
    message_id: Option<String>,
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

/// What the User Profile API told us.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Profile {
    /// First name.
    pub first_name: Option<String>,
    /// Locale such as `fr_FR`.
    pub locale: Option<String>,
    /// Hours from UTC.
    pub timezone: Option<i32>,
}

/// Meta's answer to a template submission.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CreatedTemplate {
    /// Meta's id for the template.
    pub id: String,
    /// Its review so far (`APPROVED`, `PENDING`, `REJECTED`).
    #[serde(default)]
    pub status: Option<String>,
}

/// The numbers asked for per page of a WhatsApp Business Account's numbers.
pub const NUMBERS_PER_PAGE: usize = 100;
/// The most pages of an account's numbers read when looking for one.
pub const MAX_NUMBER_PAGES: usize = 20;

/// A WhatsApp Business Account's phone number, as `GET /{waba-id}/phone_numbers` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct WhatsappNumber {
    /// The phone number's id (what webhooks call `phone_number_id`).
    pub id: String,
    /// The number as shown (`+1 631-555-5555`).
    #[serde(default)]
    pub display_phone_number: Option<String>,
    /// The business name WhatsApp shows.
    #[serde(default)]
    pub verified_name: Option<String>,
}

/// Who an access token speaks for, as `GET /me` answers: a Page access token answers its Page.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TokenOwner {
    /// The Page's (or user's) id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
}

/// The Graph API client.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    version: String,
    app_secret: Option<SecretString>,
}

impl GraphClient {
    /// A client for `base`/`version`, signing calls with the app secret when there is one.
    pub fn new(
        base: &str,
        version: &str,
        app_secret: Option<SecretString>,
    ) -> Result<GraphClient, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| GraphError::Transport(e.to_string()))?;
        Ok(GraphClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            version: version.to_owned(),
            app_secret,
        })
    }

    /// `appsecret_proof`: HMAC-SHA256 of the token keyed with the app secret.
    fn proof(&self, token: &str) -> Option<String> {
        let secret = self.app_secret.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).ok()?;
        mac.update(token.as_bytes());
        Some(crate::secrets::hex(&mac.finalize().into_bytes()))
    }

    fn auth_query(&self, token: &str) -> Vec<(&'static str, String)> {
        let mut q = vec![("access_token", token.to_owned())];
        if let Some(p) = self.proof(token) {
            q.push(("appsecret_proof", p));
        }
        q
    }

    async fn read_error(res: reqwest::Response) -> GraphError {
        let status = res.status().as_u16();
        match res.json::<ErrorEnvelope>().await {
            Ok(e) => GraphError::Api {
                status,
                code: e.error.code,
                subcode: e.error.error_subcode,
                message: e.error.message,
            },
            Err(_) => GraphError::Api {
                status,
                code: 0,
                subcode: 0,
                message: format!("HTTP {status} without a Graph error body"),
            },
        }
    }

    /// Posts a Send API body (`recipient`, `messaging_type`, `message` or `sender_action`) for the Page;
    /// answers Meta's `message_id` (absent for sender actions).
    #[tracing::instrument(skip_all, fields(page.id = %page_id))]
    pub async fn send(
        &self,
        page_id: &PageId,
        token: &str,
        body: &str,
    ) -> Result<Option<String>, GraphError> {
        let url = format!("{}/{}/{}/messages", self.base, self.version, page_id);
        let res = self
            .http
            .post(url)
            .query(&self.auth_query(token))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(Self::read_error(res).await);
        }
        let ok: SendOk = res
            .json()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))?;
        Ok(ok
            .message_id
            .or_else(|| ok.messages.into_iter().next().map(|m| m.id)))
    }

    /// Posts Conversions API events (a JSON body of `data`) to the dataset, the token as `access_token`.
    #[tracing::instrument(skip_all, fields(dataset.id = %dataset_id))]
    pub async fn post_events(&self, dataset_id: &str, token: &str, body: &str) -> Result<(), GraphError> {
        let url = format!("{}/{}/{}/events", self.base, self.version, dataset_id);
        let res = self
            .http
            .post(url)
            .query(&self.auth_query(token))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(Self::read_error(res).await);
        }
        Ok(())
    }

    /// Sets the Page's Messenger profile (Get Started button, persistent menu) through
    /// `POST /me/messenger_profile` with the Page token.
    #[tracing::instrument(skip_all)]
    pub async fn set_messenger_profile(
        &self,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<(), GraphError> {
        self.post_json("me/messenger_profile", token, body).await?;
        Ok(())
    }

    /// Submits a utility message template: `POST /{node}/message_templates`, where the node is a Page
    /// (with its token) or a WhatsApp Business Account (with its number's token; the body has the same
    /// shape). Answers Meta's id for it and its review so far (`APPROVED` within seconds, Meta says of
    /// Page templates; `PENDING` or `REJECTED` otherwise).
    #[tracing::instrument(skip_all, fields(node = %node))]
    pub async fn create_template(
        &self,
        node: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<CreatedTemplate, GraphError> {
        self.post_json(&format!("{node}/message_templates"), token, body)
            .await?
            .json()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))
    }

    /// `POST /{path}` with a JSON body and the token (and `appsecret_proof`); Meta's error body when it
    /// refuses.
    async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, GraphError> {
        let url = format!("{}/{}/{}", self.base, self.version, path);
        let res = self
            .http
            .post(url)
            .query(&self.auth_query(token))
            .json(body)
            .send()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(Self::read_error(res).await);
        }
        Ok(res)
    }

    /// `GET /{node}?fields=...` with the token (and `appsecret_proof`), read as `T`.
    async fn get_fields<T: serde::de::DeserializeOwned>(
        &self,
        node: &str,
        fields: &str,
        token: &str,
    ) -> Result<T, GraphError> {
        self.get_with(node, vec![("fields", fields.to_owned())], token)
            .await
    }

    /// `GET /{node}` with `params` and the token (and `appsecret_proof`).
    async fn get_with<T: serde::de::DeserializeOwned>(
        &self,
        node: &str,
        params: Vec<(&'static str, String)>,
        token: &str,
    ) -> Result<T, GraphError> {
        let url = format!("{}/{}/{}", self.base, self.version, node);
        let mut query = self.auth_query(token);
        query.extend(params);
        let res = self
            .http
            .get(url)
            .query(&query)
            .send()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(Self::read_error(res).await);
        }
        res.json()
            .await
            .map_err(|e| GraphError::Transport(e.without_url().to_string()))
    }

    /// Who `token` speaks for: `GET /me?fields=id,name` with the token (and `appsecret_proof`).
    #[tracing::instrument(skip_all)]
    pub async fn token_owner(&self, token: &str) -> Result<TokenOwner, GraphError> {
        self.get_fields("me", "id,name", token).await
    }

    /// The Instagram professional account connected to Page `page_id`, as Meta tells it to the Page's
    /// token: `GET /{page-id}?fields=instagram_business_account`.
    #[tracing::instrument(skip_all, fields(page.id = %page_id))]
    pub async fn instagram_account_of(
        &self,
        page_id: &PageId,
        token: &str,
    ) -> Result<Option<String>, GraphError> {
        #[derive(Deserialize)]
        struct Linked {
            instagram_business_account: Option<Account>,
        }
        #[derive(Deserialize)]
        struct Account {
            id: String,
        }
        let linked: Linked = self
            .get_fields(page_id, "instagram_business_account", token)
            .await?;
        Ok(linked.instagram_business_account.map(|a| a.id))
    }

    /// The number `phone_number_id` among the phone numbers of the WhatsApp Business Account
    /// `waba_id` the token can see: `GET /{waba-id}/phone_numbers` (whatsapp.md §5), page after page
    /// (Graph API cursors: `paging.cursors.after` while `paging.next` is there), at most
    /// [`MAX_NUMBER_PAGES`] pages of [`NUMBERS_PER_PAGE`]. `None` when the account does not list it.
    #[tracing::instrument(skip_all, fields(waba.id = %waba_id))]
    pub async fn whatsapp_number(
        &self,
        waba_id: &str,
        phone_number_id: &str,
        token: &str,
    ) -> Result<Option<WhatsappNumber>, GraphError> {
        #[derive(Deserialize)]
        struct Numbers {
            #[serde(default)]
            data: Vec<WhatsappNumber>,
            #[serde(default)]
            paging: Option<Paging>,
        }
        #[derive(Deserialize)]
        struct Paging {
            next: Option<String>,
            cursors: Option<Cursors>,
        }
        #[derive(Deserialize)]
        struct Cursors {
            after: Option<String>,
        }
        let mut after: Option<String> = None;
        for _ in 0..MAX_NUMBER_PAGES {
            let mut params = vec![
                ("fields", "id,display_phone_number,verified_name".to_owned()),
                ("limit", NUMBERS_PER_PAGE.to_string()),
            ];
            if let Some(cursor) = after.take() {
                params.push(("after", cursor));
            }
            let page: Numbers = self
                .get_with(&format!("{waba_id}/phone_numbers"), params, token)
                .await?;
            if let Some(found) = page.data.into_iter().find(|n| n.id == phone_number_id) {
                return Ok(Some(found));
            }
            after = page
                .paging
                .filter(|p| p.next.is_some())
                .and_then(|p| p.cursors)
                .and_then(|c| c.after);
            if after.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// The shopper's first name, locale and timezone.
    #[tracing::instrument(skip_all)]
    pub async fn profile(&self, psid: &Psid, token: &str) -> Result<Profile, GraphError> {
        self.get_fields(psid, "first_name,locale,timezone", token).await
    }

    /// An Instagram shopper's name (Instagram's User Profile API has no first name or locale): the
    /// first word of their name, else their username.
    #[tracing::instrument(skip_all)]
    pub async fn instagram_profile(&self, igsid: &str, token: &str) -> Result<Profile, GraphError> {
        #[derive(Deserialize)]
        struct Instagram {
            name: Option<String>,
            username: Option<String>,
        }
        let p: Instagram = self.get_fields(igsid, "name,username", token).await?;
        let first = p
            .name
            .as_deref()
            .and_then(|n| n.split_whitespace().next())
            .map(str::to_owned)
            .or(p.username);
        Ok(Profile {
            first_name: first,
            locale: None,
            timezone: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: i64, subcode: i64) -> GraphError {
        GraphError::Api {
            status,
            code,
            subcode,
            message: String::new(),
        }
    }

    #[test]
    fn meta_error_codes_are_sorted_as_the_reference_says() {
        assert_eq!(api(400, 10, 2018278).class(), ErrorClass::OutsideWindow);
        assert_eq!(api(400, 551, 1545041).class(), ErrorClass::Unreachable);
        assert_eq!(api(400, 100, 2018001).class(), ErrorClass::Unreachable);
        assert_eq!(api(400, 190, 460).class(), ErrorClass::TokenBroken);
        for code in [1200, 2, 4, 613] {
            assert_eq!(api(400, code, 0).class(), ErrorClass::Retry);
        }
        assert_eq!(api(503, 0, 0).class(), ErrorClass::Retry);
        assert_eq!(api(400, 100, 0).class(), ErrorClass::Permanent);
        assert_eq!(GraphError::Transport("reset".into()).class(), ErrorClass::Retry);
    }
}

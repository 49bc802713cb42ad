//! How a shopper arrived: an ad click, a link with a `ref`, the merchant's web chat opened on a page.
//! Every channel reads its own arrival (Meta's `referral` object, the web chat's opening call) into this
//! one shape; the engine opens the conversation on what it names, attribution stores it as a touch.

/// UTM parameters of the page a web chat was opened on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Utm {
    /// `utm_source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    /// `utm_medium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    /// `utm_campaign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    /// `utm_content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
    /// `utm_term`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
}

impl Utm {
    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == Utm::default()
    }
}

/// A referral: an ad click, a link with a `ref`, or a web chat opened on a page.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Referral {
    /// `ADS`, `SHORTLINK`, `WEBCHAT`, or whatever Meta adds (kept as given).
    pub source: String,
    /// `OPEN_THREAD`, `LEAD_COMPLETE` ...
    pub kind: String,
    /// The `ref` parameter.
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    /// The ad, for `source: ADS`.
    pub ad_id: Option<String>,
    /// The ad's title.
    pub ad_title: Option<String>,
    /// The ad's post.
    pub post_id: Option<String>,
    /// The advertised catalog item's retailer id.
    pub product_id: Option<String>,
    /// `ads_context_data` whole, as JSON text.
    pub ads_context_data: Option<String>,
    /// The page the web chat was opened on.
    pub page_url: Option<String>,
    /// The UTM parameters of that page.
    pub utm: Utm,
}

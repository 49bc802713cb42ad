//! The words every module shares: the channels a shopper talks to the merchant through.

use std::fmt;

/// A channel a conversation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Messenger: a Facebook Page's conversations.
    Messenger,
    /// Instagram Direct, through the Facebook Page linked to the Instagram professional account.
    Instagram,
    /// The merchant's own web chat (the widget on its site).
    Webchat,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Messenger, Channel::Instagram, Channel::Webchat];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::Webchat => "webchat",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True for Meta's channels (a Page's Send API, its messaging window, the Conversions API).
    pub fn is_meta(self) -> bool {
        matches!(self, Channel::Messenger | Channel::Instagram)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_reads_back_its_own_name() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
        }
        assert_eq!(Channel::parse("fax"), None);
    }
}

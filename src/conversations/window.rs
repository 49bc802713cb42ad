//! Each channel's messaging policy, in one place: when the business may write to the shopper, and how.
//!
//! Messenger and Instagram Direct (Meta's rules, see `fixtures/reference/meta.md`): a shopper's action
//! opens a 24-hour window for standard messages (`RESPONSE`); the first message after a
//! Click-to-Messenger or Click-to-Direct ad opens 7 days; after the window, a person (never automation)
//! may still answer for 7 days after the shopper's last action with the `HUMAN_AGENT` tag, on a Page that
//! has that permission. No other tag is ever used (`ACCOUNT_UPDATE`, `POST_PURCHASE_UPDATE` and
//! `CONFIRMED_EVENT_UPDATE` are refused by Meta since 2026-04-27). The merchant's web chat is the
//! merchant's own: no window. WhatsApp (`fixtures/reference/whatsapp.md` §3): a shopper's message opens
//! a 24-hour customer service window (after a Click-to-WhatsApp ad too), and no tag lets anyone write
//! after it: only an approved template does.

use chrono::{Duration, NaiveDateTime};

use super::Thread;
use crate::kernel::Channel;

/// The standard messaging window after a shopper's action.
pub const STANDARD_WINDOW: Duration = Duration::hours(24);
/// The window after the first message that followed a Click-to-Messenger or Click-to-Direct ad.
pub const AD_WINDOW: Duration = Duration::days(7);
/// How long after the shopper's last action a person may still answer (`HUMAN_AGENT` tag).
pub const HUMAN_AGENT_WINDOW: Duration = Duration::days(7);

/// How a message goes out on a Meta channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingType {
    /// A reply inside the standard window (`RESPONSE`; the web chat's only kind).
    Response,
    /// A person's message after the standard window, within 7 days (`MESSAGE_TAG` + `HUMAN_AGENT`).
    HumanAgent,
    /// A utility message from an approved template: Meta takes it outside the window.
    Utility,
}

impl MessagingType {
    /// The Send API's `messaging_type` and `tag`.
    pub fn wire(self) -> (&'static str, Option<&'static str>) {
        match self {
            MessagingType::Response => ("RESPONSE", None),
            MessagingType::HumanAgent => ("MESSAGE_TAG", Some("HUMAN_AGENT")),
            MessagingType::Utility => ("UTILITY", None),
        }
    }

    /// Reads a stored `messaging_type`.
    pub fn from_wire(messaging_type: Option<&str>) -> MessagingType {
        match messaging_type {
            Some("MESSAGE_TAG") => MessagingType::HumanAgent,
            Some("UTILITY") => MessagingType::Utility,
            _ => MessagingType::Response,
        }
    }
}

/// Who writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// threadcart itself: the bot's answers, the order's notices.
    Automation,
    /// A person of the merchant's team.
    Person {
        /// The Page may use the `HUMAN_AGENT` tag.
        human_agent_enabled: bool,
    },
}

/// A channel's messaging policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    channel: Channel,
}

impl Window {
    /// The policy of `channel`.
    pub fn of(channel: Channel) -> Window {
        Window { channel }
    }

    /// The thread after the shopper acted at `at` (a message, when `is_message`): a Meta window reopens
    /// for 24 hours, or 7 days for the first message after an ad. Computed only: the caller stores it.
    pub fn after_shopper_action(self, thread: &Thread, at: NaiveDateTime, is_message: bool) -> Thread {
        let last_inbound_at = Some(thread.last_inbound_at.map_or(at, |l| l.max(at)));
        if !self.channel.via_graph() {
            return Thread {
                last_inbound_at,
                ..thread.clone()
            };
        }
        let mut end = at + STANDARD_WINDOW;
        let mut ctm_pending = thread.ctm_pending;
        if ctm_pending && is_message {
            end = at + AD_WINDOW;
            ctm_pending = false;
        }
        Thread {
            window_ends_at: Some(thread.window_ends_at.map_or(end, |e| e.max(end))),
            last_inbound_at,
            ctm_pending,
            ..thread.clone()
        }
    }

    /// True while a standard message may be sent.
    pub fn is_open(self, thread: &Thread, at: NaiveDateTime) -> bool {
        !self.channel.via_graph() || thread.window_ends_at.is_some_and(|end| at < end)
    }

    /// How `writer` may write now, or `None` when the channel's rules allow nothing.
    pub fn allows(self, thread: &Thread, at: NaiveDateTime, writer: Writer) -> Option<MessagingType> {
        if self.is_open(thread, at) {
            return Some(MessagingType::Response);
        }
        match writer {
            Writer::Person {
                human_agent_enabled: true,
            } if self.within_human_agent_window(thread, at) => Some(MessagingType::HumanAgent),
            _ => None,
        }
    }

    /// Whether a send queued as `messaging_type` may still go out at `at` (the window may have closed
    /// while it waited).
    pub fn still_allows(self, thread: &Thread, at: NaiveDateTime, messaging_type: MessagingType) -> bool {
        match messaging_type {
            MessagingType::Response => self.is_open(thread, at),
            MessagingType::HumanAgent => self.within_human_agent_window(thread, at),
            MessagingType::Utility => true,
        }
    }

    fn within_human_agent_window(self, thread: &Thread, at: NaiveDateTime) -> bool {
        self.channel.is_meta()
            && thread
                .last_inbound_at
                .is_some_and(|last| at < last + HUMAN_AGENT_WINDOW)
    }
}

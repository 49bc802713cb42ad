//! The conversation engine: what the bot answers. For now it greets a shopper who taps Get Started or
//! arrives from an ad or a link, naming the ad when there is one; the shopping engine replaces this.

use crate::messenger::render::Message;

/// The Get Started button's payload.
pub const GET_STARTED: &str = "GET_STARTED";

/// The greeting for a new or returning shopper.
pub fn greeting(first_name: Option<&str>, merchant_name: &str, ad_title: Option<&str>) -> Vec<Message> {
    let hello = match first_name {
        Some(name) => format!("Hi {name}!"),
        None => "Hi!".to_owned(),
    };
    let text = match ad_title {
        Some(title) => format!("{hello} Thanks for your interest in “{title}”. How can we help?"),
        None => format!("{hello} Welcome to {merchant_name}. How can we help?"),
    };
    Message::text(&text)
}

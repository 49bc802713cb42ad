//! What a shopper's typed message asks for, in English or French.
//!
//! Most shoppers tap buttons, but many type instead: "panier", "can I talk to a human", "XMAS10", "do
//! you have red slippers in 38?". The engine needs one answer per message, so [`parse`] sorts the text
//! into a command, a single word (perhaps a discount code), or search words, without a model and the
//! same way every time.
//!
//! The rule, on the message folded to lower case without accents and split into words at anything that
//! is not a letter or digit (so punctuation, emoji and apostrophes never count):
//!
//! 1. No words: [`TextIntent::Help`] if the message has a `?`, else [`TextIntent::Empty`].
//! 2. A command when at least one keyword phrase (see `KEYWORDS`) is present as whole words and every
//!    other word is a filler (`STOP_WORDS`, `COURTESY` or one letter): "cart?", "my cart please", "voir mon
//!    panier", "je veux payer", "can I talk to a human". A message with any other word is not a command,
//!    so "hi, red slippers?" searches for slippers instead of greeting. When phrases of several commands
//!    appear, the strongest wins: Human, Checkout, Cart, Shop, Help, Greeting ("hi, my cart" shows the
//!    cart; "help me pay" checks out).
//! 3. One word, once surrounding punctuation is trimmed: [`TextIntent::Word`], as typed.
//! 4. Anything else: [`TextIntent::Search`] with the stop words removed.

use std::sync::LazyLock;

use crate::catalog::search::{fold, query_words};

/// What the shopper's message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextIntent {
    /// A greeting: hi, hello, hey, bonjour, bonsoir, salut, coucou.
    Greeting,
    /// Show the cart: cart, basket, panier.
    Cart,
    /// Check out: checkout, check out, pay, payer, commander, valider.
    Checkout,
    /// What can I do here: help, aide, menu, or a lone `?`.
    Help,
    /// Talk to a person: human, agent, person, humain, conseiller, quelqu'un.
    Human,
    /// Browse the catalog: shop, browse, catalog, boutique, acheter, produits.
    Shop,
    /// One word that is no keyword, trimmed of surrounding punctuation and otherwise as typed ("XMAS10",
    /// "Pantoufles"): the engine checks it against discount codes, with its own case rule, and may then
    /// search for it.
    Word(String),
    /// Several words that are no command: the folded words to search for, stop words removed, as
    /// `catalog::search::query_words` would give them. Empty when every word was a stop word ("do you
    /// have?"): the shopper asked about products without naming any.
    Search(Vec<String>),
    /// Nothing to read: blank, or only punctuation and emoji.
    Empty,
}

/// The fixed intents, strongest first: when a message holds phrases of two, the earlier one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Command {
    Human,
    Checkout,
    Cart,
    Shop,
    Help,
    Greeting,
}

impl Command {
    /// The intent this command stands for.
    fn intent(self) -> TextIntent {
        match self {
            Command::Human => TextIntent::Human,
            Command::Checkout => TextIntent::Checkout,
            Command::Cart => TextIntent::Cart,
            Command::Shop => TextIntent::Shop,
            Command::Help => TextIntent::Help,
            Command::Greeting => TextIntent::Greeting,
        }
    }
}

/// Keyword phrases, written as a shopper types them; they are folded and split like a message.
///
/// Words that also name products are left out on purpose ("bag", "order", "support"), and so are the
/// words of a longer request ("talk", "parler"), which are fillers: "talk to a person" matches through
/// "person".
const KEYWORDS: &[(Command, &str)] = &[
    (Command::Human, "human"),
    (Command::Human, "agent"),
    (Command::Human, "person"),
    (Command::Human, "someone"),
    (Command::Human, "somebody"),
    (Command::Human, "operator"),
    (Command::Human, "customer service"),
    (Command::Human, "humain"),
    (Command::Human, "personne"),
    (Command::Human, "quelqu'un"),
    (Command::Human, "conseiller"),
    (Command::Human, "conseillère"),
    (Command::Human, "service client"),
    (Command::Checkout, "checkout"),
    (Command::Checkout, "check out"),
    (Command::Checkout, "pay"),
    (Command::Checkout, "payer"),
    (Command::Checkout, "commander"),
    (Command::Checkout, "passer commande"),
    (Command::Checkout, "valider"),
    (Command::Cart, "cart"),
    (Command::Cart, "shopping cart"),
    (Command::Cart, "basket"),
    (Command::Cart, "panier"),
    (Command::Shop, "shop"),
    (Command::Shop, "shopping"),
    (Command::Shop, "browse"),
    (Command::Shop, "catalog"),
    (Command::Shop, "catalogue"),
    (Command::Shop, "store"),
    (Command::Shop, "products"),
    (Command::Shop, "buy"),
    (Command::Shop, "boutique"),
    (Command::Shop, "produits"),
    (Command::Shop, "acheter"),
    (Command::Help, "help"),
    (Command::Help, "menu"),
    (Command::Help, "what can you do"),
    (Command::Help, "aide"),
    (Command::Help, "aidez"),
    (Command::Help, "comment ça marche"),
    (Command::Greeting, "hi"),
    (Command::Greeting, "hello"),
    (Command::Greeting, "hey"),
    (Command::Greeting, "good morning"),
    (Command::Greeting, "good evening"),
    (Command::Greeting, "bonjour"),
    (Command::Greeting, "bonsoir"),
    (Command::Greeting, "salut"),
    (Command::Greeting, "coucou"),
];

/// Words that say nothing about a product, removed from searches and allowed around a command.
///
/// Folded, one group a line: English determiners, pronouns, verbs of asking and wanting, prepositions,
/// courtesy and greetings; then the same for French (`a` also stands for the folded `à`). Product words
/// stay, sizes and colours included. Greetings are here so that "bonjour, avez-vous des pulls ?" searches
/// for "pulls" (at the price of "hello kitty" searching for "kitty"). One-letter words are dropped from
/// searches as well (see `is_stop_word`): they are the remains of elisions and contractions (l', j', I'm).
const STOP_WORDS: &str = "
    a an the some any this that these those something anything
    i me my you your we us our it
    am is are do does did have has got get can could would will
    want need like looking find search show see buy help talk speak shop browse what which
    for of to in on with about and or at
    please pls plz thanks thank hi hello hey

    le la les un une des du de au aux
    je moi mon ma mes tu te toi vous votre vos nous il elle on ce cet cette ces qu que quoi
    est sont ai as avez avoir auriez veux voudrais cherche recherche besoin trouver voir montrer montrez
    acheter parler
    en pour avec dans par et ou
    svp stp merci plait bonjour bonsoir salut coucou
";

/// Words allowed around a command that stay in searches, since they can describe a product ("real
/// leather", "open toe", "back pack").
const COURTESY: &str = "
    ok okay just now again there real open go back
    juste maintenant encore vrai vraie ouvrir aller afficher retour
";

/// `KEYWORDS`, each split into folded words.
static PHRASES: LazyLock<Vec<(Command, Vec<String>)>> = LazyLock::new(|| {
    KEYWORDS
        .iter()
        .map(|(command, phrase)| (*command, words(phrase)))
        .collect()
});

/// Sorts a typed message into what it asks for.
pub fn parse(text: &str) -> TextIntent {
    let words = words(text);
    if words.is_empty() {
        return if text.contains('?') {
            TextIntent::Help
        } else {
            TextIntent::Empty
        };
    }
    if let Some(command) = command(&words) {
        return command.intent();
    }
    let trimmed = text.trim_matches(|c: char| !c.is_alphanumeric());
    if !trimmed.contains(char::is_whitespace) {
        return TextIntent::Word(trimmed.to_owned());
    }
    let kept: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !is_stop_word(w))
        .collect();
    TextIntent::Search(query_words(&kept.join(" ")))
}

/// The folded words of a text, split at anything that is not a letter or digit, as `query_words`
/// splits them but without its limit.
fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The strongest command of a message made only of keyword phrases and fillers, with at least one
/// phrase; phrases are matched longest first, left to right.
fn command(words: &[String]) -> Option<Command> {
    let mut strongest: Option<Command> = None;
    let mut rest = words;
    while let Some(first) = rest.first() {
        let phrase = PHRASES
            .iter()
            .filter(|(_, phrase)| rest.starts_with(phrase))
            .max_by_key(|(_, phrase)| phrase.len());
        let matched = match phrase {
            Some((command, phrase)) => {
                strongest = Some(strongest.map_or(*command, |s| s.min(*command)));
                phrase.len()
            }
            None if is_filler(first) => 1,
            None => return None,
        };
        rest = rest.get(matched..).unwrap_or_default();
    }
    strongest
}

/// A word that may surround a command.
fn is_filler(word: &str) -> bool {
    is_stop_word(word) || listed(COURTESY, word)
}

/// A word left out of searches.
fn is_stop_word(word: &str) -> bool {
    listed(STOP_WORDS, word) || is_single_letter(word)
}

/// Whether `word` is one of the whitespace-separated words of `list`.
fn listed(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|listed| listed == word)
}

/// One letter, not a digit: "size 8" keeps its 8.
fn is_single_letter(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn search(words: &[&str]) -> TextIntent {
        TextIntent::Search(words.iter().map(|w| (*w).to_owned()).collect())
    }

    fn assert_all(intent: TextIntent, texts: &[&str]) {
        for text in texts {
            assert_eq!(parse(text), intent, "{text:?}");
        }
    }

    #[test]
    fn greetings_in_english_and_french_are_greetings() {
        assert_all(
            TextIntent::Greeting,
            &[
                "hi",
                "Hello!",
                "hey there",
                "good morning",
                "Bonjour",
                "bonsoir",
                "Salut !",
                "coucou 👋",
            ],
        );
    }

    #[test]
    fn asking_for_the_cart_shows_the_cart() {
        assert_all(
            TextIntent::Cart,
            &[
                "cart",
                "basket",
                "my cart",
                "my cart please",
                "show me my shopping cart",
                "panier",
            ],
        );
        assert_all(
            TextIntent::Cart,
            &["mon panier", "voir mon panier", "Mon panier svp", "mon-panier"],
        );
    }

    #[test]
    fn asking_to_pay_checks_out() {
        assert_all(
            TextIntent::Checkout,
            &["checkout", "check out", "Check-out", "pay", "I want to pay"],
        );
        assert_all(
            TextIntent::Checkout,
            &[
                "payer",
                "je veux payer",
                "commander",
                "valider",
                "passer commande",
                "je voudrais commander",
            ],
        );
    }

    #[test]
    fn asking_for_help_shows_help() {
        assert_all(
            TextIntent::Help,
            &["help", "help!!", "Help me", "menu", "what can you do?"],
        );
        assert_all(
            TextIntent::Help,
            &["aide", "Aidé", "AIDE", "aidez-moi", "comment ça marche ?"],
        );
    }

    #[test]
    fn a_lone_question_mark_asks_for_help() {
        assert_all(TextIntent::Help, &["?", " ?? ", "¿?", "👍?"]);
    }

    #[test]
    fn asking_for_a_person_reaches_a_human() {
        assert_all(
            TextIntent::Human,
            &[
                "human",
                "agent",
                "person",
                "talk to a person",
                "can I talk to a human?",
                "real person pls",
            ],
        );
        assert_all(
            TextIntent::Human,
            &[
                "humain",
                "conseiller",
                "quelqu'un",
                "quelqu’un",
                "parler à quelqu'un",
                "je voudrais parler à un conseiller",
                "service client",
                "une vraie personne svp",
            ],
        );
    }

    #[test]
    fn asking_to_browse_opens_the_shop() {
        assert_all(
            TextIntent::Shop,
            &[
                "shop",
                "browse",
                "catalog",
                "show me your products",
                "I want to buy",
            ],
        );
        assert_all(
            TextIntent::Shop,
            &[
                "boutique",
                "catalogue",
                "acheter",
                "voir les produits",
                "je veux acheter",
            ],
        );
    }

    #[test]
    fn case_and_accents_do_not_matter() {
        assert_eq!(parse("PANIER"), TextIntent::Cart);
        assert_eq!(parse("PaNiEr"), TextIntent::Cart);
        assert_eq!(parse("HUMAIN"), TextIntent::Human);
        assert_eq!(parse("Conseillère"), TextIntent::Human);
        assert_eq!(parse("conseillere"), TextIntent::Human);
        assert_eq!(parse("pâyer"), TextIntent::Checkout);
    }

    #[test]
    fn surrounding_punctuation_and_whitespace_do_not_matter() {
        assert_eq!(parse("cart?"), TextIntent::Cart);
        assert_eq!(parse("  ...cart!!!  "), TextIntent::Cart);
        assert_eq!(parse("\n« panier »\t"), TextIntent::Cart);
        assert_eq!(parse("👉 checkout 👈"), TextIntent::Checkout);
    }

    #[test]
    fn the_strongest_command_wins_when_a_message_holds_several() {
        assert_eq!(parse("hi, my cart"), TextIntent::Cart);
        assert_eq!(parse("help me pay"), TextIntent::Checkout);
        assert_eq!(parse("valider mon panier"), TextIntent::Checkout);
        assert_eq!(
            parse("bonjour, je veux parler à quelqu'un pour payer"),
            TextIntent::Human
        );
        assert_eq!(parse("hello, help"), TextIntent::Help);
        assert_eq!(parse("shop menu"), TextIntent::Shop);
    }

    #[test]
    fn a_keyword_next_to_a_product_word_is_a_search_not_a_command() {
        assert_eq!(parse("hi, red slippers?"), search(&["red", "slippers"]));
        assert_eq!(parse("shop wool socks"), search(&["wool", "socks"]));
        assert_eq!(
            parse("do you have a 2 person tent"),
            search(&["2", "person", "tent"])
        );
        assert_eq!(parse("panier en osier"), search(&["panier", "osier"]));
    }

    #[test]
    fn a_single_word_that_is_no_keyword_is_kept_as_typed() {
        assert_eq!(parse("XMAS10"), TextIntent::Word("XMAS10".to_owned()));
        assert_eq!(parse("  Xmas10!  "), TextIntent::Word("Xmas10".to_owned()));
        assert_eq!(parse("SUMMER-2025"), TextIntent::Word("SUMMER-2025".to_owned()));
        assert_eq!(parse("Pantoufles"), TextIntent::Word("Pantoufles".to_owned()));
        assert_eq!(parse("l'écharpe"), TextIntent::Word("l'écharpe".to_owned()));
        assert_eq!(parse("42"), TextIntent::Word("42".to_owned()));
        assert_eq!(parse("thanks"), TextIntent::Word("thanks".to_owned()));
    }

    #[test]
    fn several_words_that_are_no_command_are_a_search() {
        assert_eq!(parse("XMAS10 code"), search(&["xmas10", "code"]));
        assert_eq!(parse("Pantoufles Été"), search(&["pantoufles", "ete"]));
    }

    #[test]
    fn stop_words_are_removed_from_searches_in_english() {
        assert_eq!(
            parse("Hi! Do you have the red slippers for kids?"),
            search(&["red", "slippers", "kids"])
        );
        assert_eq!(parse("I want something in size 38"), search(&["size", "38"]));
    }

    #[test]
    fn stop_words_are_removed_from_searches_in_french() {
        assert_eq!(
            parse("Bonjour, avez-vous des pulls en laine pour homme ?"),
            search(&["pulls", "laine", "homme"])
        );
        assert_eq!(parse("je veux la même en bleu"), search(&["meme", "bleu"]));
    }

    #[test]
    fn one_letter_words_are_left_out_of_searches_but_digits_stay() {
        assert_eq!(parse("I'm looking for a wool scarf"), search(&["wool", "scarf"]));
        assert_eq!(
            parse("je veux l'écharpe de la vitrine"),
            search(&["echarpe", "vitrine"])
        );
        assert_eq!(parse("Je cherche une taille M"), search(&["taille"]));
        assert_eq!(parse("iphone 8 case"), search(&["iphone", "8", "case"]));
    }

    #[test]
    fn a_sentence_of_only_stop_words_searches_for_nothing() {
        assert_eq!(parse("do you have?"), search(&[]));
        assert_eq!(parse("qu'est-ce que vous avez ?"), search(&[]));
    }

    #[test]
    fn a_long_search_keeps_the_first_eight_words_like_catalog_search() {
        assert_eq!(
            parse("one two three four five six seven eight nine ten"),
            search(&["one", "two", "three", "four", "five", "six", "seven", "eight"])
        );
    }

    #[test]
    fn blank_and_emoji_only_messages_are_empty() {
        assert_all(
            TextIntent::Empty,
            &["", "   ", "\n\t", "👍", "!!!", "... 🙏 👍 ...", "\u{200b}"],
        );
    }

    #[test]
    fn every_keyword_phrase_alone_gives_its_command() {
        for (command, phrase) in KEYWORDS {
            assert_eq!(parse(phrase), command.intent(), "{phrase:?}");
        }
    }

    #[test]
    fn every_listed_word_is_folded_so_that_it_can_match() {
        for word in STOP_WORDS.split_whitespace().chain(COURTESY.split_whitespace()) {
            assert_eq!(words(word), vec![word.to_owned()], "{word:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_text(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn a_word_is_never_blank_and_never_holds_whitespace(text in "\\PC{0,40}") {
            if let TextIntent::Word(word) = parse(&text) {
                prop_assert!(!word.is_empty());
                prop_assert!(!word.contains(char::is_whitespace));
            }
        }

        #[test]
        fn search_words_are_query_words_without_stop_words(text in "[a-zA-Zéè' ,?!]{0,80}") {
            if let TextIntent::Search(words) = parse(&text) {
                prop_assert!(words.len() <= 8);
                for word in &words {
                    prop_assert!(!is_stop_word(word), "{word:?}");
                    prop_assert_eq!(query_words(word), vec![word.clone()]);
                }
            }
        }
    }
}

//! Labels: free words a merchant puts on products and room types (`slippers`, `stays`), that agents
//! have as skills and rules put on threads. Routing gives a thread to the agent whose skills cover the
//! labels of what the shopper looks at.

use super::FieldError;

/// The most labels one product, room type, agent or thread has.
pub const MAX_LABELS: usize = 20;

/// Whether `s` is a label: 1 to 40 lowercase letters, digits, `-` or `_`.
pub fn is_label(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A checked, duplicate-free list of labels, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Labels(Vec<String>);

impl Labels {
    /// Checks labels from the wire: each is trimmed and lowercased; one bad label or too many is an
    /// error on `field`.
    pub fn parse(field: &str, raw: &[String], errors: &mut Vec<FieldError>) -> Labels {
        let labels: Vec<String> = raw.iter().map(|l| l.trim().to_lowercase()).collect();
        if labels.len() > MAX_LABELS || !labels.iter().all(|l| is_label(l)) {
            errors.push(FieldError::new(
                field,
                "invalid_labels",
                format!(
                    "at most {MAX_LABELS} labels of 1 to 40 lowercase letters, digits, `-` or `_`, such as \
                     \"slippers\""
                ),
            ));
        }
        Labels::dedup(labels)
    }

    fn dedup(mut labels: Vec<String>) -> Labels {
        let mut seen = std::collections::HashSet::new();
        labels.retain(|l| seen.insert(l.clone()));
        Labels(labels)
    }

    /// Reads stored labels (a JSON array).
    pub fn from_stored(text: &str) -> Result<Labels, serde_json::Error> {
        serde_json::from_str(text).map(Labels)
    }

    /// As stored (a JSON array).
    pub fn stored(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }

    /// The labels.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The labels, owned.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }

    /// These labels and `more`'s, without repeats (within the limit).
    pub fn union(&self, more: &[String]) -> Labels {
        let mut all = self.0.clone();
        all.extend(more.iter().cloned());
        let mut merged = Labels::dedup(all);
        merged.0.truncate(MAX_LABELS);
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_lowercased_trimmed_and_kept_once() {
        let mut errors = Vec::new();
        let labels = Labels::parse(
            "labels",
            &[" Slippers".into(), "slippers".into(), "wool_2".into()],
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(labels.as_slice(), ["slippers", "wool_2"]);
        assert_eq!(Labels::from_stored(&labels.stored()).ok(), Some(labels));
    }

    #[test]
    fn a_label_with_a_space_or_too_many_labels_is_refused_on_the_field() {
        let mut errors = Vec::new();
        Labels::parse("labels", &["has space".into()], &mut errors);
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i}")).collect();
        Labels::parse("products[0].labels", &many, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["labels", "products[0].labels"]);
    }
}

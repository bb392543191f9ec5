//! The `Link` header (RFC 8288 §3): finding the target of a relation such as `next`.

/// The URI-reference of the first link whose `rel` includes `relation` (case-insensitive), across every field
/// line given.
pub fn find(values: &[&str], relation: &str) -> Option<String> {
    values.iter().find_map(|value| {
        parse(value)
            .into_iter()
            .find(|(_, rels)| rels.iter().any(|r| r.eq_ignore_ascii_case(relation)))
            .map(|(uri, _)| uri)
    })
}

/// Every `<uri>; params` entry of one field value, with its relation types.
fn parse(value: &str) -> Vec<(String, Vec<String>)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>').map(|e| start + e) else {
            break;
        };
        let uri = rest[start + 1..end].trim().to_string();
        rest = &rest[end + 1..];
        // Parameters run to the next link: a comma outside quotes.
        let mut in_quotes = false;
        let params_end = rest
            .char_indices()
            .find(|(_, c)| {
                if *c == '"' {
                    in_quotes = !in_quotes;
                }
                *c == ',' && !in_quotes
            })
            .map_or(rest.len(), |(i, _)| i);
        let params = &rest[..params_end];
        rest = &rest[params_end..];
        let mut rels = Vec::new();
        for param in params.split(';') {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("rel") {
                rels.extend(value.trim().trim_matches('"').split_whitespace().map(str::to_string));
            }
        }
        links.push((uri, rels));
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_next_among_several_links_and_field_lines() {
        let value = r#"</items?page=1>; rel="first", </items?cursor=abc&tag=x>; rel="next""#;
        assert_eq!(find(&[value], "next").as_deref(), Some("/items?cursor=abc&tag=x"));
        assert_eq!(
            find(&["</a>; rel=prev", "</b>; rel=next"], "next").as_deref(),
            Some("/b")
        );
        assert_eq!(
            find(&[r#"<https://x.test/p2>; title="a, b"; rel="Next last""#], "next").as_deref(),
            Some("https://x.test/p2")
        );
        assert_eq!(find(&[r#"</a>; rel="prev""#], "next"), None);
        assert_eq!(find(&["garbage"], "next"), None);
    }
}

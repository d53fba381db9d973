//! Reading AWS's XML answers (roxmltree: a read-only tree, nothing to keep in sync) and
//! escaping the few values we put into Route 53's XML requests. Element names are
//! matched without their namespace: EC2 answers in `http://ec2.amazonaws.com/doc/2016-11-15/`
//! (moto drops the trailing slash), Route 53 in its own, and only the local names are
//! documented per API.

use roxmltree::{Document, Node};

/// Parses an answer body.
pub fn parse(body: &str) -> Result<Document<'_>, String> {
    Document::parse(body).map_err(|e| format!("not XML ({e}): {}", snippet(body)))
}

/// The first child element called `name`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// All child elements called `name`.
pub fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

/// The text of the child element called `name` (trimmed), if there is one with text.
pub fn text(node: Node, name: &str) -> Option<String> {
    child(node, name)
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The `<item>`s of the set element `set` under `node`: EC2's list encoding.
pub fn items<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    set: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    child(node, set)
        .into_iter()
        .flat_map(|s| children(s, "item"))
}

/// The first descendant element called `name`, anywhere below `node`.
pub fn find<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// The code and message of an AWS error document: EC2's
/// `<Response><Errors><Error><Code/><Message/></Error></Errors></Response>` and Route 53's
/// `<ErrorResponse><Error><Type/><Code/><Message/></Error></ErrorResponse>` alike.
pub fn aws_error(body: &str) -> Option<(String, String)> {
    let doc = Document::parse(body).ok()?;
    let err = find(doc.root(), "Error")?;
    let code = text(err, "Code")?;
    Some((code, text(err, "Message").unwrap_or_default()))
}

/// Escapes text for an XML element's content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The start of a body, for error messages about answers we could not read.
pub fn snippet(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_errors_are_read() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>b1b2</RequestID></Response>"#;
        assert_eq!(
            aws_error(body),
            Some((
                "UnauthorizedOperation".into(),
                "You are not authorized to perform this operation.".into()
            ))
        );
    }

    #[test]
    fn route53_errors_are_read() {
        let body = r#"<?xml version="1.0"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>No hosted zone found with ID: Z1</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        assert_eq!(
            aws_error(body),
            Some((
                "NoSuchHostedZone".into(),
                "No hosted zone found with ID: Z1".into()
            ))
        );
    }

    #[test]
    fn non_error_bodies_have_no_code() {
        assert_eq!(aws_error("<html>502 Bad Gateway</html>"), None);
        assert_eq!(aws_error("not xml at all"), None);
        assert_eq!(aws_error("<Response><Errors/></Response>"), None);
    }

    #[test]
    fn escaping_covers_the_five_entities() {
        assert_eq!(escape(r#"a&b<c>"d'"#), "a&amp;b&lt;c&gt;&quot;d&apos;");
        assert_eq!(escape("star.example."), "star.example.");
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(snippet("a\n  b\tc"), "a b c");
        let long = "x".repeat(500);
        assert_eq!(snippet(&long).chars().count(), 201);
    }

    #[test]
    fn namespaces_do_not_matter() {
        let doc = parse(r#"<A xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><set><item><v> 1 </v></item><item><v>2</v></item></set></A>"#).unwrap();
        let root = doc.root_element();
        let vs: Vec<String> = items(root, "set").filter_map(|i| text(i, "v")).collect();
        assert_eq!(vs, ["1", "2"]);
        assert!(parse("<unclosed>").is_err());
    }
}

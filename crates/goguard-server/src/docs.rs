//! Where a finding's rule code links to (`codeDescription.href`).
//!
//! goguard has no documentation site: by default each rule's `goguard explain` text is
//! written once to a Markdown file under the temporary directory and the link opens it in
//! the editor. `initializationOptions.ruleDocsUrl` (with `{code}` and `{name}` in it) links
//! to a page of your own instead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use goguard_check::registry;
use lsp_types::Uri;

use crate::convert::path_to_uri;

/// Each rule's link, by code; rules whose link cannot be made are left out (the finding
/// then carries its code without a link).
pub fn rule_links(template: Option<&str>) -> HashMap<&'static str, Uri> {
    match template {
        Some(t) => registry::all()
            .iter()
            .filter_map(|r| {
                let url = t.replace("{code}", r.code).replace("{name}", r.name);
                Some((r.code, Uri::from_str(&url).ok()?))
            })
            .collect(),
        None => {
            let dir = docs_dir();
            registry::all()
                .iter()
                .filter_map(|r| Some((r.code, path_to_uri(&write_doc(&dir, r)?)?)))
                .collect()
        }
    }
}

fn docs_dir() -> PathBuf {
    std::env::temp_dir().join(format!("goguard-{}-rules", env!("CARGO_PKG_VERSION")))
}

/// Writes the rule's doc unless the same text is there; through a temporary file and a
/// rename, so that two servers starting at once never leave half a file.
fn write_doc(dir: &std::path::Path, rule: &registry::Rule) -> Option<PathBuf> {
    let path = dir.join(format!("{}.md", rule.code));
    if std::fs::read_to_string(&path).is_ok_and(|t| t == rule.doc) {
        return Some(path);
    }
    std::fs::create_dir_all(dir).ok()?;
    let tmp = dir.join(format!(".{}.{}.tmp", rule.code, std::process::id()));
    std::fs::write(&tmp, rule.doc).ok()?;
    std::fs::rename(&tmp, &path).ok()?;
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_a_template_or_to_the_explain_text() {
        let links = rule_links(Some("https://example.com/rules/{code}-{name}"));
        assert_eq!(
            links["G106"].as_str(),
            "https://example.com/rules/G106-abandoned-sender"
        );
        let links = rule_links(None);
        let path = crate::convert::uri_to_path(&links["G301"]).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text, registry::find("G301").unwrap().doc);
    }
}

//! What a page's form would send: the values of the controls of the form that submits to
//! a path, read from the page as the gateway served it (masked). A signed action shows
//! its agent the change from these values to the ones sent.
//!
//! Read as a browser builds a form's data set: named controls that are not disabled;
//! checkboxes and radio buttons only when checked (`on` without a value); a select's
//! selected options (its first where none is, unless it is `multiple`); a textarea's text;
//! no buttons or files. Text (a textarea's, an option's) comes from lol_html as written,
//! so its character references are decoded with `html-escape`.

use lol_html::html_content::Element;
use lol_html::{HandlerResult, Settings, element, rewrite_str, text};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Default)]
struct Form {
    action: String,
    method: String,
    fields: Vec<(String, String)>,
}

#[derive(Default)]
struct Select {
    name: String,
    multiple: bool,
    chosen: Vec<String>,
    first: Option<String>,
}

#[derive(Default)]
struct Reading {
    forms: Vec<Form>,
    open: Option<usize>,
    textarea: Option<(String, String)>,
    select: Option<Select>,
    /// The option being read: its value attribute, its text so far, whether selected.
    option: Option<(Option<String>, String, bool)>,
}

impl Reading {
    fn push(&mut self, name: String, value: String) {
        if let Some(form) = self.open.and_then(|i| self.forms.get_mut(i)) {
            form.fields.push((name, value));
        }
    }

    fn end_option(&mut self) {
        let (Some((value, text, selected)), Some(select)) = (self.option.take(), &mut self.select)
        else {
            return;
        };
        let value = value.unwrap_or_else(|| {
            let text = htmlize::unescape(text.as_str());
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        });
        if select.first.is_none() {
            select.first = Some(value.clone());
        }
        if selected {
            select.chosen.push(value);
        }
    }
}

type Shared = Rc<RefCell<Reading>>;

/// An end-tag handler that runs `f`.
fn on_end(f: impl FnOnce() -> HandlerResult + 'static) -> lol_html::EndTagHandler<'static> {
    Box::new(move |_| f())
}

/// An attribute's value as the browser reads it: lol_html gives it as written, with its
/// character references (`&amp;`) still in (cloudflare/lol-html#131). htmlize decodes
/// them by the HTML standard's rules for attributes, where `&copy=1` stays as written
/// (as in a query string) but `&copy 1` is `© 1`, and `&#x80;` is `€`.
fn attribute(el: &Element<'_, '_>, name: &str) -> Option<String> {
    el.get_attribute(name)
        .map(|v| htmlize::unescape_attribute(v).into_owned())
}

fn named(el: &Element<'_, '_>) -> Option<String> {
    let name = attribute(el, "name")?;
    (!name.is_empty() && !el.has_attribute("disabled")).then_some(name)
}

/// The fields the form on a page that submits to `action` with `method` would send, as
/// `(name, value)` pairs in document order; `None` when no form on the page does.
/// `page` is the page's own path (a form without an action submits to it); an action
/// with a query or fragment names the same path; one on another origin names none.
pub fn form_values(
    html: &str,
    page: &str,
    action: &str,
    method: &str,
) -> Option<Vec<(String, String)>> {
    let state: Shared = Rc::default();
    let base = url::Url::parse("https://page.invalid/")
        .ok()?
        .join(page)
        .ok()?;
    let (s1, s2, s3, s4, s5, s6) = (
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
    );
    let handlers = vec![
        element!("form", move |el| -> HandlerResult {
            let action = attribute(el, "action").unwrap_or_default();
            let target = base
                .join(&action)
                .ok()
                .filter(|u| u.origin() == base.origin())
                .map(|u| u.path().to_owned())
                .unwrap_or_default();
            let method = el
                .get_attribute("method")
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase();
            let mut r = s1.borrow_mut();
            r.forms.push(Form {
                action: target,
                method,
                fields: Vec::new(),
            });
            r.open = Some(r.forms.len() - 1);
            let end = s1.clone();
            if let Some(handlers) = el.end_tag_handlers() {
                handlers.push(on_end(move || {
                    end.borrow_mut().open = None;
                    Ok(())
                }));
            }
            Ok(())
        }),
        element!("input", move |el| -> HandlerResult {
            let Some(name) = named(el) else {
                return Ok(());
            };
            let kind = attribute(el, "type")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let value = attribute(el, "value");
            let value = match kind.as_str() {
                "submit" | "button" | "reset" | "image" | "file" => return Ok(()),
                "checkbox" | "radio" if !el.has_attribute("checked") => return Ok(()),
                "checkbox" | "radio" => value.unwrap_or_else(|| "on".into()),
                _ => value.unwrap_or_default(),
            };
            s2.borrow_mut().push(name, value);
            Ok(())
        }),
        element!("textarea", move |el| -> HandlerResult {
            let Some(name) = named(el) else {
                return Ok(());
            };
            s3.borrow_mut().textarea = Some((name, String::new()));
            let end = s3.clone();
            if let Some(handlers) = el.end_tag_handlers() {
                handlers.push(on_end(move || {
                    let mut r = end.borrow_mut();
                    if let Some((name, text)) = r.textarea.take() {
                        // A browser drops the newline right after the start tag.
                        let text = htmlize::unescape(text.as_str());
                        let text = text.strip_prefix('\n').unwrap_or(&text).to_owned();
                        r.push(name, text);
                    }
                    Ok(())
                }));
            }
            Ok(())
        }),
        text!("textarea", move |t| -> HandlerResult {
            if let Some((_, text)) = &mut s4.borrow_mut().textarea {
                text.push_str(t.as_str());
            }
            Ok(())
        }),
        element!("select, select option", move |el| -> HandlerResult {
            if el.tag_name() == "select" {
                let Some(name) = named(el) else {
                    return Ok(());
                };
                s5.borrow_mut().select = Some(Select {
                    name,
                    multiple: el.has_attribute("multiple"),
                    ..Select::default()
                });
                let end = s5.clone();
                if let Some(handlers) = el.end_tag_handlers() {
                    handlers.push(on_end(move || {
                        let mut r = end.borrow_mut();
                        r.end_option();
                        if let Some(select) = r.select.take() {
                            let chosen = match (select.chosen.is_empty(), select.multiple) {
                                (false, _) => select.chosen,
                                (true, false) => select.first.into_iter().collect(),
                                (true, true) => Vec::new(),
                            };
                            for value in chosen {
                                r.push(select.name.clone(), value);
                            }
                        }
                        Ok(())
                    }));
                }
                return Ok(());
            }
            let mut r = s5.borrow_mut();
            if r.select.is_none() || el.has_attribute("disabled") {
                return Ok(());
            }
            // An option's end tag may be left out: the next one ends it.
            r.end_option();
            r.option = Some((
                attribute(el, "value"),
                String::new(),
                el.has_attribute("selected"),
            ));
            Ok(())
        }),
        text!("select option", move |t| -> HandlerResult {
            if let Some((_, text, _)) = &mut s6.borrow_mut().option {
                text.push_str(t.as_str());
            }
            Ok(())
        }),
    ];
    let settings = handlers
        .into_iter()
        .fold(Settings::new(), |s, h| s.append_element_content_handler(h));
    rewrite_str(html, settings).ok()?;
    let reading = state.take();
    reading
        .forms
        .into_iter()
        .find(|f| f.action == action && f.method == method)
        .map(|f| f.fields)
}

#[cfg(test)]
mod tests {
    use super::form_values;

    #[test]
    fn character_references_are_read_by_the_standards_rules_for_attributes_and_text() {
        let page = "<form method=post action=\"address?x=1&para=2\">\
            <input name=\"query\" value=\"a=1&copy=2&amp;notit=3\">\
            <input name=\"sign\" value=\"&copy 2026 &notit; &#x80;&#0;&#x110000;\">\
            <input name=\"prefix&para\" value=\"&ampx &amp;x\">\
            <textarea name=\"t\">&notit; &copy2026</textarea></form>";
        let got = form_values(page, "/address", "/address", "POST").expect("the form");
        let want: Vec<(String, String)> = [
            // Followed by `=` or a letter, a reference without `;` stays as written.
            ("query", "a=1&copy=2&notit=3"),
            ("sign", "© 2026 &notit; €\u{FFFD}\u{FFFD}"),
            ("prefix¶", "&ampx &x"),
            // In text, the longest known prefix is decoded.
            ("t", "¬it; ©2026"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_form_that_submits_to_a_path_is_read_as_a_browser_would_send_it() {
        let page = r#"<form action="/search"><input name="q" value="x"></form>
<form method="post" action="address?x=1&amp;y=2">
  <input name="line1" value="1 High St &amp; Sons &quot;Ltd&quot; &#x27;">
  <input name="city" value="York" disabled>
  <input name="post_code" value="•••• 1AA" readonly>
  <input type="checkbox" name="primary" checked>
  <input type="checkbox" name="billing" value="yes">
  <input type="radio" name="kind" value="home"><input type="radio" name="kind" value="work" checked>
  <textarea name="notes">
Ring twice &amp; wait</textarea>
  <select name="country"><option value="GB">UK<option value="FR" selected>France</select>
  <select name="region"><option>North  East</option><option>South</option></select>
  <input type="submit" name="save" value="Save">
</form>"#;
        let got = form_values(page, "/address", "/address", "POST").expect("the form");
        let want: Vec<(String, String)> = [
            ("line1", "1 High St & Sons \"Ltd\" '"),
            ("post_code", "•••• 1AA"),
            ("primary", "on"),
            ("kind", "work"),
            ("notes", "Ring twice & wait"),
            ("country", "FR"),
            ("region", "North East"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            form_values(page, "/address", "/search", "GET"),
            Some(vec![("q".to_owned(), "x".to_owned())])
        );
        assert_eq!(form_values(page, "/address", "/address", "PUT"), None);
        assert_eq!(
            form_values(
                r#"<form method="post" action="https://evil.example/address"><input name="a" value="1"></form>"#,
                "/address",
                "/address",
                "POST"
            ),
            None,
            "a form that submits elsewhere is not the product's"
        );
        assert_eq!(
            form_values(
                r#"<form method="post"><input name="a" value="1"></form>"#,
                "/address",
                "/address",
                "POST"
            ),
            Some(vec![("a".to_owned(), "1".to_owned())]),
            "a form without an action submits to its page"
        );
    }
}

//! `gen_ai.input.messages` / `gen_ai.output.messages` / `gen_ai.system_instructions` in exactly
//! the latest GenAI schema. Anything looser (OpenAI-style content, tool calls, extra part
//! fields, non-text content) returns `None`: the Python path's tolerant parser owns it.

use serde_json::Value as Json;

pub struct Part {
    pub kind: String,
    pub content: Option<String>,
}

pub struct Message {
    pub role: String,
    pub parts: Vec<Part>,
    pub finish_reason: Option<String>,
}

impl Message {
    /// The message's text parts joined by new lines, empty parts left out.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .parts
            .iter()
            .filter_map(|p| p.content.as_deref())
            .filter(|t| !t.is_empty())
            .collect();
        texts.join("\n")
    }
}

fn part(value: &Json) -> Option<Part> {
    let object = value.as_object()?;
    let mut kind = "text".to_string();
    let mut content = None;
    for (key, item) in object {
        match (key.as_str(), item) {
            ("type", Json::String(s)) => kind = s.clone(),
            ("content", Json::String(s)) => content = Some(s.clone()),
            ("content", Json::Null) => content = None,
            _ => return None, // extra fields or non-text content: the Python path keeps them
        }
    }
    Some(Part { kind, content })
}

fn parts(value: &Json) -> Option<Vec<Part>> {
    value.as_array()?.iter().map(part).collect()
}

/// A list of messages, each with a non-empty role and a parts list; unknown message fields are
/// ignored, as the Python model ignores them.
pub fn messages(text: &str) -> Option<Vec<Message>> {
    if !text.starts_with('[') {
        return None;
    }
    let parsed: Json = serde_json::from_str(text).ok()?;
    let mut out = Vec::new();
    for item in parsed.as_array()? {
        let object = item.as_object()?;
        let role = match object.get("role")? {
            Json::String(s) if !s.is_empty() => s.clone(),
            _ => return None,
        };
        let finish_reason = match object.get("finish_reason") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => return None,
        };
        out.push(Message { role, parts: parts(object.get("parts")?)?, finish_reason });
    }
    Some(out)
}

/// System instructions: a list of text parts joined by new lines, or a plain string.
pub fn instructions(text: &str) -> Option<String> {
    if text.starts_with('{') {
        return None;
    }
    if !text.starts_with('[') {
        return Some(text.to_string());
    }
    let parsed: Json = serde_json::from_str(text).ok()?;
    let parts = parts(&parsed)?;
    let texts: Option<Vec<String>> = parts.into_iter().map(|p| p.content).collect();
    Some(texts?.join("\n"))
}

/// The new turn: the last user message with text, else every non-system message's text.
pub fn prompt_text(messages: &[Message]) -> String {
    for message in messages.iter().rev() {
        if message.role == "user" {
            let text = message.text();
            if !text.is_empty() {
                return text;
            }
        }
    }
    joined_text(messages, |m| m.role != "system")
}

pub fn joined_text(messages: &[Message], keep: impl Fn(&Message) -> bool) -> String {
    let texts: Vec<String> =
        messages.iter().filter(|m| keep(m)).map(Message::text).filter(|t| !t.is_empty()).collect();
    texts.join("\n")
}

/// The messages as the sample's JSON column writes them (absent values left out).
pub fn write(messages: &[Message], out: &mut String) {
    out.push('[');
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"role\":");
        crate::row::string(&message.role, out);
        out.push_str(",\"parts\":[");
        for (j, part) in message.parts.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"type\":");
            crate::row::string(&part.kind, out);
            if let Some(content) = &part.content {
                out.push_str(",\"content\":");
                crate::row::string(content, out);
            }
            out.push('}');
        }
        out.push(']');
        if let Some(reason) = &message.finish_reason {
            out.push_str(",\"finish_reason\":");
            crate::row::string(reason, out);
        }
        out.push('}');
    }
    out.push(']');
}

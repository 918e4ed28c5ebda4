//! A business's face for its visitors: display name, logo, colour, welcome and offline
//! messages, and its agents' names and avatars (schema version 4); the chat window's title,
//! the launcher's side and the leave-a-message prompt (schema version 9).
//!
//! Everything here is set by a business (console or CLI) and shown to strangers, so it is
//! validated on the way in whatever the caller: bounded lengths, no control characters, a
//! colour only as `#rrggbb`, a logo or avatar only as one of our own uploads. The pages still
//! render it as text only.

use super::{Result, StoreError};
use crate::store::db::{params, Db, OptionalExtension};

/// Longest display name, characters (the visitor page's header holds about this much).
pub(crate) const MAX_NAME: usize = 40;
/// Longest agent display name, characters (as `kefu agent add` allows).
pub(crate) const MAX_AGENT_NAME: usize = 64;
/// Longest welcome or offline message, characters.
pub(crate) const MAX_NOTE: usize = 500;
/// Longest leave-a-message prompt, characters (one line above the form).
pub(crate) const MAX_PROMPT: usize = 120;

/// The side of the page the widget's launcher and panel sit on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Side {
    /// Bottom right (the default, and what an empty column means).
    #[default]
    Right,
    /// Bottom left.
    Left,
}

impl Side {
    /// The stored word.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Right => "right",
            Side::Left => "left",
        }
    }

    /// The stored word back ("" or anything else: the default).
    fn parse(s: &str) -> Side {
        if s == "left" {
            Side::Left
        } else {
            Side::Right
        }
    }
}

/// What a business shows its visitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    /// Business id.
    pub bid: String,
    /// Display name ("" or the bid for businesses created by `agent add`).
    pub name: String,
    /// Logo: `/uploads/<hash>.<ext>` or "".
    pub logo: String,
    /// Colour `#rrggbb` or "" (the pages' default).
    pub color: String,
    /// Shown before the visitor's first message ("": none).
    pub welcome: String,
    /// Shown with the leave-a-message form when no agent is online ("": the default).
    pub offline: String,
    /// The chat window's title ("": the display name, else the pages' default).
    pub title: String,
    /// Where the widget's launcher sits.
    pub side: Side,
    /// The leave-a-message form's heading ("": the pages' default).
    pub leave_prompt: String,
}

/// An agent as visitors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Face {
    /// Agent id (messages carry it as `sender_id`).
    pub agent_id: String,
    /// Display name.
    pub name: String,
    /// Avatar: `/uploads/<hash>.<ext>` or "".
    pub avatar: String,
}

/// A change to a profile: `None` keeps the field, `Some("")` resets it (but the name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Patch {
    /// New display name.
    pub name: Option<String>,
    /// New logo URL.
    pub logo: Option<String>,
    /// New colour.
    pub color: Option<String>,
    /// New welcome message.
    pub welcome: Option<String>,
    /// New offline message.
    pub offline: Option<String>,
    /// New window title.
    pub title: Option<String>,
    /// New launcher side.
    pub side: Option<Side>,
    /// New leave-a-message prompt.
    pub leave_prompt: Option<String>,
}

/// Why a profile field is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldError {
    /// Name empty, too long or with control characters.
    Name,
    /// Agent name empty, too long or with control characters.
    AgentName,
    /// Not `#rrggbb`.
    Color,
    /// Not one of our uploads.
    Image,
    /// Welcome or offline message too long or with control characters.
    Note,
    /// Title too long or with control characters.
    Title,
    /// Leave-a-message prompt too long or with control characters.
    Prompt,
}

impl FieldError {
    /// The message a caller gets.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FieldError::Name => "name must be 1..40 characters, no control characters",
            FieldError::AgentName => "agent_name must be 1..64 characters, no control characters",
            FieldError::Color => "color must be #rrggbb (or empty for the default)",
            FieldError::Image => "logo/avatar must be an /uploads/ URL from POST /api/upload",
            FieldError::Note => {
                "welcome/offline must be at most 500 characters, no control characters but newlines"
            }
            FieldError::Title => "title must be at most 40 characters, no control characters",
            FieldError::Prompt => {
                "leave_prompt must be at most 120 characters, no control characters"
            }
        }
    }
}

impl From<FieldError> for StoreError {
    fn from(e: FieldError) -> Self {
        StoreError::Invalid(e.as_str())
    }
}

/// A display name, trimmed: 1..=[`MAX_NAME`] characters, none of them control characters.
pub(crate) fn clean_name(s: &str) -> std::result::Result<String, FieldError> {
    let s = s.trim();
    let n = s.chars().count();
    if n == 0 || n > MAX_NAME || s.chars().any(char::is_control) {
        return Err(FieldError::Name);
    }
    Ok(s.to_string())
}

/// An agent's display name, trimmed: 1..=[`MAX_AGENT_NAME`] characters, no control characters.
pub(crate) fn clean_agent_name(s: &str) -> std::result::Result<String, FieldError> {
    let s = s.trim();
    let n = s.chars().count();
    if n == 0 || n > MAX_AGENT_NAME || s.chars().any(char::is_control) {
        return Err(FieldError::AgentName);
    }
    Ok(s.to_string())
}

/// One line of at most `max` characters, trimmed, "" allowed (the default), no control
/// characters.
fn clean_line(s: &str, max: usize, e: FieldError) -> std::result::Result<String, FieldError> {
    let s = s.trim();
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(e);
    }
    Ok(s.to_string())
}

/// A window title: "" or a line of at most [`MAX_NAME`] characters.
pub(crate) fn clean_title(s: &str) -> std::result::Result<String, FieldError> {
    clean_line(s, MAX_NAME, FieldError::Title)
}

/// A leave-a-message prompt: "" or a line of at most [`MAX_PROMPT`] characters.
pub(crate) fn clean_prompt(s: &str) -> std::result::Result<String, FieldError> {
    clean_line(s, MAX_PROMPT, FieldError::Prompt)
}

/// A colour: "" or `#rrggbb`, lower-cased (nothing else can reach a style property).
pub(crate) fn clean_color(s: &str) -> std::result::Result<String, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let ok = s.len() == 7 && s.starts_with('#') && s.bytes().skip(1).all(|b| b.is_ascii_hexdigit());
    ok.then(|| s.to_ascii_lowercase()).ok_or(FieldError::Color)
}

/// A welcome or offline message, trimmed: at most [`MAX_NOTE`] characters; newlines and tabs
/// are the only control characters kept (`\r\n` becomes `\n`).
pub(crate) fn clean_note(s: &str) -> std::result::Result<String, FieldError> {
    let s = s.trim().replace("\r\n", "\n");
    if s.chars().count() > MAX_NOTE || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(FieldError::Note);
    }
    Ok(s)
}

/// An image URL: "" or `/uploads/<64 lower-case hex>.<png|jpg|gif|webp>`, the only images the
/// pages show (the upload path checked, stripped and stored it).
pub(crate) fn clean_image(s: &str) -> std::result::Result<String, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let ok = s
        .strip_prefix("/uploads/")
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(h, e)| {
            h.len() == 64
                && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && matches!(e, "png" | "jpg" | "gif" | "webp")
        });
    ok.then(|| s.to_string()).ok_or(FieldError::Image)
}

/// Check every field of `p`, returning it cleaned.
pub(crate) fn clean(p: &Patch) -> std::result::Result<Patch, FieldError> {
    Ok(Patch {
        name: p.name.as_deref().map(clean_name).transpose()?,
        logo: p.logo.as_deref().map(clean_image).transpose()?,
        color: p.color.as_deref().map(clean_color).transpose()?,
        welcome: p.welcome.as_deref().map(clean_note).transpose()?,
        offline: p.offline.as_deref().map(clean_note).transpose()?,
        title: p.title.as_deref().map(clean_title).transpose()?,
        side: p.side,
        leave_prompt: p.leave_prompt.as_deref().map(clean_prompt).transpose()?,
    })
}

/// One business's profile (`None`: no such business).
pub(crate) fn get(conn: &Db, bid: &str) -> Result<Option<Profile>> {
    conn.prepare_cached(
        "SELECT bid, name, logo, color, welcome, offline_msg, title, widget_side, leave_prompt
         FROM businesses WHERE bid = ?1",
    )?
    .query_row([bid], |r| {
        Ok(Profile {
            bid: r.get(0)?,
            name: r.get(1)?,
            logo: r.get(2)?,
            color: r.get(3)?,
            welcome: r.get(4)?,
            offline: r.get(5)?,
            title: r.get(6)?,
            side: Side::parse(&r.get::<_, String>(7)?),
            leave_prompt: r.get(8)?,
        })
    })
    .optional()
}

/// Apply `patch` (validated here, whoever calls) and return the profile as stored.
pub(crate) fn set(conn: &Db, bid: &str, patch: &Patch) -> Result<Profile> {
    let p = clean(patch)?;
    let n = conn
        .prepare_cached(
            "UPDATE businesses SET name = COALESCE(?2, name), logo = COALESCE(?3, logo),
                color = COALESCE(?4, color), welcome = COALESCE(?5, welcome),
                offline_msg = COALESCE(?6, offline_msg), title = COALESCE(?7, title),
                widget_side = COALESCE(?8, widget_side),
                leave_prompt = COALESCE(?9, leave_prompt)
             WHERE bid = ?1",
        )?
        .execute(params![
            bid,
            p.name,
            p.logo,
            p.color,
            p.welcome,
            p.offline,
            p.title,
            p.side.map(Side::as_str),
            p.leave_prompt
        ])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, bid)?.ok_or(StoreError::NotFound)
}

/// Set an agent's display name and avatar (`None` keeps it; an avatar of "" removes it).
/// Its open sessions keep the name they logged in with until they log in again.
pub(crate) fn set_agent(
    conn: &Db,
    bid: &str,
    agent_id: &str,
    name: Option<&str>,
    avatar: Option<&str>,
) -> Result<()> {
    let name = name.map(clean_agent_name).transpose()?;
    let avatar = avatar.map(clean_image).transpose()?;
    let n = conn
        .prepare_cached(
            "UPDATE agents SET name = COALESCE(?3, name), avatar = COALESCE(?4, avatar)
             WHERE bid = ?1 AND agent_id = ?2",
        )?
        .execute(params![bid, agent_id, name, avatar])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Most agents a profile lists (a business with more shows the first ones by id; the pages
/// fall back to initials for the others).
const MAX_FACES: i64 = 200;

/// The agents of a business as visitors see them, by id.
pub(crate) fn faces(conn: &Db, bid: &str) -> Result<Vec<Face>> {
    let mut st = conn.prepare_cached(
        "SELECT agent_id, name, avatar FROM agents WHERE bid = ?1 ORDER BY agent_id LIMIT ?2",
    )?;
    let rows = st.query_map(params![bid, MAX_FACES], |r| {
        Ok(Face {
            agent_id: r.get(0)?,
            name: r.get(1)?,
            avatar: r.get(2)?,
        })
    })?;
    rows.collect::<Result<_>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGO: &str =
        "/uploads/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.png";

    #[test]
    fn fields_are_validated() {
        assert_eq!(clean_color(" #A1b2C3 ").unwrap(), "#a1b2c3");
        assert_eq!(clean_color("").unwrap(), "");
        for bad in [
            "red",
            "#abc",
            "#abcdefg",
            "#12345g",
            "#123456;x",
            "url(x)",
            "#１２３４５６",
        ] {
            assert_eq!(clean_color(bad), Err(FieldError::Color), "{bad}");
        }
        assert_eq!(clean_name("  店 ").unwrap(), "店");
        assert_eq!(clean_name(""), Err(FieldError::Name));
        assert_eq!(clean_name("a\u{202e}b").unwrap(), "a\u{202e}b"); // format, not control
        assert_eq!(clean_name("a\nb"), Err(FieldError::Name));
        assert_eq!(clean_name(&"名".repeat(41)), Err(FieldError::Name));
        assert!(clean_name(&"名".repeat(40)).is_ok());
        assert_eq!(clean_note("hi\r\nthere").unwrap(), "hi\nthere");
        assert_eq!(clean_note("a\u{0}b"), Err(FieldError::Note));
        assert_eq!(clean_note(&"x".repeat(501)), Err(FieldError::Note));
        assert_eq!(clean_title(" 在线咨询 ").unwrap(), "在线咨询");
        assert_eq!(clean_title("").unwrap(), "");
        assert_eq!(clean_title("a\nb"), Err(FieldError::Title));
        assert_eq!(clean_title(&"名".repeat(41)), Err(FieldError::Title));
        assert!(clean_prompt(&"x".repeat(120)).is_ok());
        assert_eq!(clean_prompt(&"x".repeat(121)), Err(FieldError::Prompt));
        assert_eq!(clean_prompt("a\u{7}b"), Err(FieldError::Prompt));
        assert_eq!(Side::parse(""), Side::Right);
        assert_eq!(Side::parse(Side::Left.as_str()), Side::Left);
        assert_eq!(clean_image(LOGO).unwrap(), LOGO);
        for bad in [
            "https://evil.example/x.png",
            "javascript:alert(1)",
            "/uploads/../kefu.db",
            "/uploads/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.svg",
            "//evil.example/uploads/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.png",
        ] {
            assert_eq!(clean_image(bad), Err(FieldError::Image), "{bad}");
        }
    }

    #[test]
    fn set_get_and_faces() {
        let dir = std::env::temp_dir().join(format!("kefu-profile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conn = crate::store::open(&dir, crate::config::SyncMode::Normal).unwrap();
        super::super::tenancy::agent_add(&conn, "b", "a", "Alice", "h", None).unwrap();
        let p = set(
            &conn,
            "b",
            &Patch {
                name: Some("Shop <b>".into()),
                color: Some("#E4393C".into()),
                logo: Some(LOGO.into()),
                welcome: Some("Hello!".into()),
                ..Patch::default()
            },
        )
        .unwrap();
        assert_eq!(
            (
                p.name.as_str(),
                p.color.as_str(),
                p.logo.as_str(),
                p.welcome.as_str()
            ),
            ("Shop <b>", "#e4393c", LOGO, "Hello!")
        );
        // A refused field changes nothing, the valid ones included.
        let bad = Patch {
            name: Some("New".into()),
            color: Some("blue".into()),
            ..Patch::default()
        };
        assert!(matches!(set(&conn, "b", &bad), Err(StoreError::Invalid(_))));
        assert_eq!(get(&conn, "b").unwrap().unwrap().name, "Shop <b>");
        // Reset to the default colour; the rest stays.
        let p = set(
            &conn,
            "b",
            &Patch {
                color: Some(String::new()),
                ..Patch::default()
            },
        )
        .unwrap();
        assert_eq!((p.color.as_str(), p.welcome.as_str()), ("", "Hello!"));
        // Version 9's fields: set, kept when absent, reset by "".
        let p = set(
            &conn,
            "b",
            &Patch {
                title: Some(" Ask us ".into()),
                side: Some(Side::Left),
                leave_prompt: Some("Leave a note".into()),
                ..Patch::default()
            },
        )
        .unwrap();
        assert_eq!(
            (p.title.as_str(), p.side, p.leave_prompt.as_str()),
            ("Ask us", Side::Left, "Leave a note")
        );
        let p = set(
            &conn,
            "b",
            &Patch {
                title: Some(String::new()),
                ..Patch::default()
            },
        )
        .unwrap();
        assert_eq!((p.title.as_str(), p.side), ("", Side::Left));
        assert!(matches!(
            set(&conn, "nope", &Patch::default()),
            Err(StoreError::NotFound)
        ));
        set_agent(&conn, "b", "a", None, Some(LOGO)).unwrap();
        assert!(set_agent(&conn, "b", "a", None, Some("http://x/y.png")).is_err());
        assert!(set_agent(&conn, "b", "a", Some(" "), None).is_err());
        assert!(matches!(
            set_agent(&conn, "b", "zz", None, Some(LOGO)),
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            faces(&conn, "b").unwrap(),
            vec![Face {
                agent_id: "a".into(),
                name: "Alice".into(),
                avatar: LOGO.into()
            }]
        );
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! A search typed on `/`: the field while it is typed, and the text kept once Enter
//! applies it (Esc clears it). The Logs, Activity and Search screens each hold one.

use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::Frame;

use crate::form::Field;
use crate::screen::{typed, Ctx, Input};
use crate::widgets::form_box;

pub struct Search {
    /// What the field asks for.
    label: &'static str,
    /// The text applied: what is shown holds it.
    pub text: String,
    field: Option<Field>,
}

pub enum Msg {
    /// Open the field.
    Open,
    Type(char),
    /// Keep what was typed.
    Apply,
    /// Close the field and show everything again.
    Clear,
    Nothing,
}

impl Search {
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            text: String::new(),
            field: None,
        }
    }

    /// Whether lines fetched with `fetched` are the ones this search asks for (the
    /// fetch runs in the background, so for a moment after Enter they are not).
    pub fn answered_by(&self, fetched: Option<&str>) -> bool {
        fetched == Some(self.text.as_str())
    }

    pub fn is_open(&self) -> bool {
        self.field.is_some()
    }

    pub fn message(&self, key: Input) -> Option<Msg> {
        if self.field.is_none() {
            return (key == Input::Char('/')).then_some(Msg::Open);
        }
        Some(match key {
            Input::Esc => Msg::Clear,
            Input::Enter => Msg::Apply,
            k => typed(k).map_or(Msg::Nothing, Msg::Type),
        })
    }

    pub fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) {
        match msg {
            Msg::Open => {
                *ctx.message = None;
                self.field = Some(Field::new(self.label, ""));
            }
            Msg::Type(c) => {
                if let Some(f) = &mut self.field {
                    f.edit(c);
                }
            }
            Msg::Apply => {
                self.text = self.field.take().map(|f| f.value).unwrap_or_default();
                ctx.refresh = true;
            }
            Msg::Clear => {
                self.field = None;
                self.text.clear();
                ctx.refresh = true;
            }
            Msg::Nothing => {}
        }
    }

    /// The field's box, while it is typed.
    pub fn view(&self, f: &mut Frame<'_>, area: Rect) {
        if let Some(field) = &self.field {
            form_box(f, area, "Search", vec![Line::from(field.shown(true))]);
        }
    }
}

//! Text fields for the console's forms: typed into with letters, erased with Backspace,
//! passwords shown as `*`.

#[derive(Debug, Clone, Default)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
    pub secret: bool,
}

impl Field {
    pub fn new(label: &'static str, value: &str) -> Self {
        Self {
            label,
            value: value.into(),
            secret: false,
        }
    }

    pub fn secret(label: &'static str) -> Self {
        Self {
            label,
            value: String::new(),
            secret: true,
        }
    }

    /// Apply a typed character or Backspace (`\u{8}`); true when the value changed.
    pub fn edit(&mut self, c: char) -> bool {
        match c {
            '\u{8}' => self.value.pop().is_some(),
            c if !c.is_control() && self.value.chars().count() < 120 => {
                self.value.push(c);
                true
            }
            _ => false,
        }
    }

    /// What the screen shows, with a cursor when focused.
    pub fn shown(&self, focused: bool) -> String {
        let v = if self.secret {
            "*".repeat(self.value.chars().count())
        } else {
            self.value.clone()
        };
        format!(
            "{}{:<w$} [{}{}]",
            if focused { "> " } else { "  " },
            self.label,
            v,
            if focused { "_" } else { "" },
            w = 22
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_erasing_and_masking() {
        let mut f = Field::secret("Password");
        for c in "ab1".chars() {
            f.edit(c);
        }
        f.edit('\u{8}');
        assert_eq!(f.value, "ab");
        assert!(f.shown(true).contains("[**_]"));
        assert!(!f.edit('\n'));
    }
}

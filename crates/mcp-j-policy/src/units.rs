//! Human units in the configuration, the manifest and on the command line: sizes (`512M`, `2G`) and durations (`30s`, `10m`).

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Split `"512M"` into `(512, "M")`; `None` without leading digits.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    Some((num.parse().ok()?, unit))
}

/// Parse a size: a whole number with an optional binary unit `K`, `M`, `G`, `T` (also
/// `KiB`, `MB`, … — all powers of 1024). A bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(text).ok_or_else(|| format!("`{text}` is not a size (e.g. 512M, 2G)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!("`{text}`: unknown size unit `{unit}` (use K, M, G or T)"));
        }
    };
    n.checked_mul(1u64 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

/// Parse a duration: a whole number with a unit `ms`, `s`, `m`, `h`, `d`. A bare number
/// is seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = number_and_unit(text).ok_or_else(|| format!("`{text}` is not a duration (e.g. 30s, 10m)"))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "" | "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
        "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
        "d" => std::time::Duration::from_secs(n.saturating_mul(24 * 3600)),
        _ => {
            return Err(format!(
                "`{text}`: unknown duration unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    if d.is_zero() {
        return Err(format!("`{text}`: a duration must be positive"));
    }
    Ok(d)
}

/// A size in bytes: `"512M"` or a number of bytes in a layer, `"512M"` when shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected a size such as \"512M\""))? {
            Raw::Bytes(0) => Err(serde::de::Error::custom("a size must be positive")),
            Raw::Bytes(n) => Ok(Size(n)),
            Raw::Text(t) => parse_size(&t).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// `1024` → `"1K"`: the largest binary unit that divides the size exactly.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes & ((1 << shift) - 1) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A duration: `"30s"`, `"10m"` (a bare number is seconds); shown as `"30s"` or `"1500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0.as_millis();
        let text = if ms / 1000 * 1000 != ms {
            format!("{ms}ms")
        } else {
            format!("{}s", ms / 1000)
        };
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        let text =
            match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected a duration such as \"30s\""))? {
                Raw::Secs(n) => n.to_string(),
                Raw::Text(t) => t,
            };
        parse_duration(&text).map(Duration).map_err(serde::de::Error::custom)
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_size(text).map(Size)
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(Duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "M", "12Q", "-1M", "1.5G", "0", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(std::time::Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(std::time::Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(std::time::Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(std::time::Duration::from_secs(7 * 24 * 3600)));
        assert_eq!(parse_duration("250ms"), Ok(std::time::Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(std::time::Duration::from_secs(5)));
        for bad in ["", "s", "10x", "-5s", "0s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_durations_show_in_units() {
        assert_eq!(format_size(512 << 20), "512M");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(3 << 10), "3K");
        let t = serde_json::to_value(Duration(std::time::Duration::from_millis(1500))).expect("json");
        assert_eq!(t, "1500ms");
        assert_eq!("2G".parse::<Size>(), Ok(Size(2 << 30)));
        assert_eq!(
            "10m".parse::<Duration>(),
            Ok(Duration(std::time::Duration::from_secs(600)))
        );
        assert_eq!("0".parse::<Size>(), Err("`0` is out of range".to_string()));
    }

    #[test]
    fn serde_accepts_numbers_and_text() {
        assert_eq!(serde_json::from_str::<Size>("4096").expect("bytes"), Size(4096));
        assert_eq!(serde_json::from_str::<Size>("\"1K\"").expect("text"), Size(1024));
        assert!(serde_json::from_str::<Size>("0").is_err());
        assert_eq!(
            serde_json::from_str::<Duration>("5").expect("secs"),
            Duration(std::time::Duration::from_secs(5))
        );
        assert!(serde_json::from_str::<Duration>("\"0s\"").is_err());
    }
}

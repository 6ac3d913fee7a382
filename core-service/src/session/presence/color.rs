//! A participant's color (DESIGN §4): `extra.color` when it is a valid hex
//! color, else one derived from the participant id, stable across processes.

/// A color from `extra.color` when it is a valid hex color.
pub(super) fn color_from_extra(extra_json: &str) -> Option<String> {
    let extra: serde_json::Value = serde_json::from_str(extra_json).ok()?;
    let color = extra.get("color")?.as_str()?;
    let hex = color.strip_prefix('#')?;
    let valid = matches!(hex.len(), 3 | 4 | 6 | 8) && hex.chars().all(|c| c.is_ascii_hexdigit());
    valid.then(|| color.to_owned())
}

/// A stable color derived from the participant id.
pub(super) fn derived_color(participant_id: &str) -> String {
    const PALETTE: [&str; 12] = [
        "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#469990",
        "#9a6324", "#800000", "#808000", "#000075",
    ];
    // FNV-1a: stable across processes and releases, unlike the std hasher.
    let hash = participant_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let index = usize::try_from(hash % PALETTE.len() as u64).unwrap_or(0);
    PALETTE[index].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_comes_from_extra_only_when_valid() {
        assert_eq!(
            color_from_extra(r##"{"color":"#a1b2c3"}"##).as_deref(),
            Some("#a1b2c3")
        );
        assert_eq!(color_from_extra(r##"{"color":"red"}"##), None);
        assert_eq!(color_from_extra(r##"{"color":"#zzz"}"##), None);
        assert_eq!(color_from_extra("not json"), None);
    }

    #[test]
    fn derived_color_is_stable() {
        assert_eq!(derived_color("p-1"), derived_color("p-1"));
        assert!(derived_color("p-1").starts_with('#'));
    }
}

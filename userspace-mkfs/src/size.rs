//! Parsing of size and number arguments the way mke2fs and util-linux tools spell them.

/// Parses the trailing filesystem size argument into bytes.
///
/// A plain number counts `plain_unit`-byte blocks (mke2fs semantics: 1 KiB, so `65536` is
/// 64 MiB, or the `-b` block size when one was given); a number with a binary suffix `K`, `M`, `G` or `T` (optionally followed by `iB` or `B`, any case) is that
/// many KiB, MiB, GiB or TiB. `s` (512-byte sectors) is accepted too, as mke2fs does.
pub fn parse_fs_size(arg: &str, plain_unit: u64) -> Result<u64, String> {
    let bad = || format!("invalid filesystem size '{arg}'");
    let digits_end = arg.find(|c: char| !c.is_ascii_digit()).unwrap_or(arg.len());
    if digits_end == 0 {
        return Err(bad());
    }
    let number: u64 = arg[..digits_end].parse().map_err(|_| bad())?;
    let suffix = arg[digits_end..].to_ascii_lowercase();
    let unit: u64 = match suffix.as_str() {
        "" => plain_unit,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "s" => 512,
        _ => return Err(bad()),
    };
    let bytes = number.checked_mul(unit).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(bad());
    }
    Ok(bytes)
}

/// Parses an unsigned decimal integer option value.
pub fn parse_u64(opt: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("invalid value '{value}' for option {opt}"))
}

/// Parses a non-negative decimal percentage with up to a few fractional digits (`-m 0.5`),
/// returned in hundredths of a percent so no floating point rounding is involved.
pub fn parse_percent_hundredths(opt: &str, value: &str) -> Result<u64, String> {
    let bad = || format!("invalid value '{value}' for option {opt}");
    let (int, frac) = match value.split_once('.') {
        Some((i, f)) => (i, f),
        None => (value, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.len() > 2 && frac[2..].chars().any(|c| c != '0') {
        return Err(format!(
            "{opt} '{value}': at most two decimal places are supported"
        ));
    }
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut frac_digits: String = frac.chars().take(2).collect();
    while frac_digits.len() < 2 {
        frac_digits.push('0');
    }
    let frac: u64 = frac_digits.parse().map_err(|_| bad())?;
    int.checked_mul(100)
        .and_then(|v| v.checked_add(frac))
        .ok_or_else(bad)
}

/// Formats a byte count for humans with a binary unit (`64.0 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut scaled = bytes as f64;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_number_counts_kib_blocks() {
        assert_eq!(parse_fs_size("65536", 1024), Ok(64 << 20));
        assert_eq!(parse_fs_size("1", 1024), Ok(1024));
        assert_eq!(parse_fs_size("16384", 4096), Ok(64 << 20));
        assert_eq!(parse_fs_size("16384k", 4096), Ok(16 << 20));
    }

    #[test]
    fn binary_suffixes() {
        assert_eq!(parse_fs_size("64M", 1024), Ok(64 << 20));
        assert_eq!(parse_fs_size("64m", 1024), Ok(64 << 20));
        assert_eq!(parse_fs_size("8K", 1024), Ok(8 << 10));
        assert_eq!(parse_fs_size("2G", 1024), Ok(2 << 30));
        assert_eq!(parse_fs_size("1T", 1024), Ok(1 << 40));
        assert_eq!(parse_fs_size("1TiB", 1024), Ok(1 << 40));
        assert_eq!(parse_fs_size("16s", 1024), Ok(8192));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_fs_size("", 1024).is_err());
        assert!(parse_fs_size("M", 1024).is_err());
        assert!(parse_fs_size("12X", 1024).is_err());
        assert!(parse_fs_size("-5", 1024).is_err());
        assert!(parse_fs_size("0", 1024).is_err());
        assert!(parse_fs_size("99999999999999999999", 1024).is_err());
        assert!(parse_fs_size("20000000P", 1024).is_err());
        assert!(parse_fs_size("17179869184T", 1024).is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent_hundredths("-m", "5"), Ok(500));
        assert_eq!(parse_percent_hundredths("-m", "0.5"), Ok(50));
        assert_eq!(parse_percent_hundredths("-m", "12.25"), Ok(1225));
        assert_eq!(parse_percent_hundredths("-m", ".5"), Ok(50));
        assert_eq!(parse_percent_hundredths("-m", "1.500"), Ok(150));
        assert!(parse_percent_hundredths("-m", "1.555").is_err());
        assert!(parse_percent_hundredths("-m", "x").is_err());
        assert!(parse_percent_hundredths("-m", "-1").is_err());
        assert!(parse_percent_hundredths("-m", ".").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(3 << 39), "1.5 TiB");
    }
}

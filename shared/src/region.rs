//! AWS region names, checked by shape (the list of regions grows; a lookup table would
//! refuse tomorrow's region).

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`: two letters, one or
/// two lowercase words, a number.
pub fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::valid_region;

    #[test]
    fn region_names_by_shape() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "useast-1",
            "US-EAST-1",
            "us-east-1a",
            "u-east-1",
            "us--1",
        ] {
            assert!(!valid_region(bad), "{bad}");
        }
    }
}

//! Which cores run shards: `"all"`, a count (`"2"`), or a list with ranges (`"0,2-3"`).

use std::collections::BTreeSet;

/// Upper bound on a core id in a spec, to reject typos such as "0-100000" early.
pub const MAX_CORE_ID: usize = 4095;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSpec {
    All,
    Count(usize),
    List(Vec<usize>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreSpecError {
    #[error("empty core spec (use \"all\", a count such as \"2\", or a list such as \"0,2-3\")")]
    Empty,
    #[error("cannot parse `{0}` as a core id or range")]
    BadItem(String),
    #[error("core count must be at least 1")]
    ZeroCount,
    #[error("core id {0} is above the limit {MAX_CORE_ID}")]
    TooLarge(usize),
}

impl CoreSpec {
    pub fn parse(text: &str) -> Result<CoreSpec, CoreSpecError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CoreSpecError::Empty);
        }
        if text.eq_ignore_ascii_case("all") {
            return Ok(CoreSpec::All);
        }
        if !text.contains([',', '-']) {
            let count: usize = text
                .parse()
                .map_err(|_| CoreSpecError::BadItem(text.to_string()))?;
            if count == 0 {
                return Err(CoreSpecError::ZeroCount);
            }
            return Ok(CoreSpec::Count(count));
        }
        let mut cores = BTreeSet::new();
        for item in text.split(',') {
            let item = item.trim();
            let parse = |s: &str| -> Result<usize, CoreSpecError> {
                let id: usize = s
                    .trim()
                    .parse()
                    .map_err(|_| CoreSpecError::BadItem(item.to_string()))?;
                if id > MAX_CORE_ID {
                    return Err(CoreSpecError::TooLarge(id));
                }
                Ok(id)
            };
            match item.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse(lo)?, parse(hi)?);
                    if lo > hi {
                        return Err(CoreSpecError::BadItem(item.to_string()));
                    }
                    cores.extend(lo..=hi);
                }
                None => {
                    cores.insert(parse(item)?);
                }
            }
        }
        Ok(CoreSpec::List(cores.into_iter().collect()))
    }

    /// The concrete core ids to pin shards to, given how many cores the machine has.
    /// A count larger than the machine wraps around (two shards may share a core).
    pub fn resolve(&self, available: usize) -> Vec<usize> {
        let available = available.max(1);
        match self {
            CoreSpec::All => (0..available).collect(),
            CoreSpec::Count(n) => (0..*n).map(|i| i % available).collect(),
            CoreSpec::List(list) => list.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_count_and_lists() {
        assert_eq!(CoreSpec::parse("all").unwrap(), CoreSpec::All);
        assert_eq!(CoreSpec::parse("2").unwrap(), CoreSpec::Count(2));
        assert_eq!(
            CoreSpec::parse("0,2-3").unwrap(),
            CoreSpec::List(vec![0, 2, 3])
        );
        assert_eq!(CoreSpec::parse("1-1").unwrap(), CoreSpec::List(vec![1]));
    }

    #[test]
    fn rejects_nonsense() {
        assert_eq!(CoreSpec::parse(""), Err(CoreSpecError::Empty));
        assert_eq!(CoreSpec::parse("0"), Err(CoreSpecError::ZeroCount));
        assert!(matches!(
            CoreSpec::parse("3-1"),
            Err(CoreSpecError::BadItem(_))
        ));
        assert!(matches!(
            CoreSpec::parse("a,b"),
            Err(CoreSpecError::BadItem(_))
        ));
        assert_eq!(
            CoreSpec::parse("0-99999"),
            Err(CoreSpecError::TooLarge(99999))
        );
    }

    #[test]
    fn resolves_against_machine() {
        assert_eq!(CoreSpec::All.resolve(2), vec![0, 1]);
        assert_eq!(CoreSpec::Count(3).resolve(2), vec![0, 1, 0]);
    }
}

//! udocker 1.3's command-line grammar (`spec/udocker.md` §0):
//! `udocker [general options] COMMAND [command options] ARGS`. Options are `-x`, `--xx`, `--xx=v`;
//! an option that takes a value also accepts `--xx v` and `-x v`. Unlike upstream, combined short
//! flags (`-it`) and `-xVALUE` work, as in docker. `--` ends options; a lone `-` is an argument
//! (stdin/stdout). Unknown options are a syntax error.

use std::collections::BTreeMap;

/// One option a command accepts. `names` lists every spelling; the first is the key results use.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub names: &'static [&'static str],
    pub value: bool,
}

pub const fn flag(names: &'static [&'static str]) -> Opt {
    Opt {
        names,
        value: false,
    }
}

pub const fn val(names: &'static [&'static str]) -> Opt {
    Opt { names, value: true }
}

#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: BTreeMap<&'static str, Vec<String>>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The last value given for an option (later ones override earlier ones, as in docker).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeatable option, in order.
    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn find(opts: &[Opt], name: &str) -> Option<Opt> {
    opts.iter().copied().find(|o| o.names.contains(&name))
}

/// Parse a command's options. With `stop_at_positional` (used by `run`) everything after the first
/// argument belongs to it (`run C ls -l` must pass `-l` to `ls`); otherwise options and arguments
/// may be interleaved.
pub fn parse(items: &[String], opts: &[Opt], stop_at_positional: bool) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    let mut only_args = false;
    while i < items.len() {
        let it = &items[i];
        i += 1;
        if only_args || it == "-" || !it.starts_with('-') {
            p.args.push(it.clone());
            if stop_at_positional {
                only_args = true;
            }
            continue;
        }
        if it == "--" {
            only_args = true;
            continue;
        }
        if let Some(body) = it.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (it.clone(), None),
            };
            let o = find(opts, &name).ok_or_else(|| format!("syntax error at: {it}"))?;
            let v = if o.value {
                match inline {
                    Some(v) => v,
                    None if i < items.len() => {
                        i += 1;
                        items[i - 1].clone()
                    }
                    None => return Err(format!("option {name} needs a value")),
                }
            } else if inline.is_some() {
                return Err(format!("option {name} takes no value"));
            } else {
                String::new()
            };
            p.values.entry(o.names[0]).or_default().push(v);
            continue;
        }
        // Short options, possibly combined: `-it`, `-vHOST:CONT`, `-v HOST:CONT`.
        let chars: Vec<char> = it[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let name = format!("-{}", chars[j]);
            let o = find(opts, &name).ok_or_else(|| format!("syntax error at: {it}"))?;
            j += 1;
            if o.value {
                let rest: String = chars[j..].iter().collect();
                let v = if let Some(r) = rest.strip_prefix('=') {
                    r.to_string()
                } else if !rest.is_empty() {
                    rest
                } else if i < items.len() {
                    i += 1;
                    items[i - 1].clone()
                } else {
                    return Err(format!("option {name} needs a value"));
                };
                p.values.entry(o.names[0]).or_default().push(v);
                break;
            }
            p.values.entry(o.names[0]).or_default().push(String::new());
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        flag(&["-i", "--interactive"]),
        flag(&["-t", "--tty"]),
        val(&["-v", "--volume"]),
        val(&["--name"]),
    ];

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn forms() {
        let p = parse(
            &s(&[
                "--name=a", "-it", "-v", "/a:/b", "--volume", "/c", "-v/d", "C", "ls", "-l",
                "--name=x",
            ]),
            OPTS,
            true,
        )
        .unwrap();
        assert_eq!(p.get("--name"), Some("a"));
        assert!(p.has("-i") && p.has("-t"));
        assert_eq!(p.all("-v"), &["/a:/b", "/c", "/d"]);
        assert_eq!(p.args, s(&["C", "ls", "-l", "--name=x"]));
    }

    #[test]
    fn interleaved_and_errors() {
        let p = parse(&s(&["a", "--name", "n", "b", "-"]), OPTS, false).unwrap();
        assert_eq!(p.args, s(&["a", "b", "-"]));
        assert!(parse(&s(&["--bogus"]), OPTS, false).is_err());
        assert!(parse(&s(&["-x"]), OPTS, false).is_err());
        assert!(parse(&s(&["--name"]), OPTS, false).is_err());
        assert!(parse(&s(&["-i=3"]), OPTS, false).is_err());
        assert!(parse(&s(&["--interactive=3"]), OPTS, false).is_err());
        let p = parse(&s(&["--", "--name"]), OPTS, false).unwrap();
        assert_eq!(p.args, s(&["--name"]));
    }
}

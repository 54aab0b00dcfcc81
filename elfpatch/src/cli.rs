//! patchelf-compatible command line (`udocker patchelf ARGS…`, or this binary called as `patchelf`).
//! The only module that prints. Arguments become one validated `Plan`, then every file is run through
//! the fixed pipeline of spec §1.1, whatever the order on the command line.

use crate::error::{Error, Result};
use crate::ops::{os_abi_name, parse_os_abi, RpathOp};
use crate::Elf;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const VERSION: &str = "0.19.0";

#[derive(Debug, Default)]
struct Plan {
    files: Vec<String>,
    output: Option<String>,
    page_size: Option<u64>,
    debug: bool,
    quiet: bool,
    print_interpreter: bool,
    print_os_abi: bool,
    set_os_abi: Option<u8>,
    print_soname: bool,
    set_soname: Option<String>,
    set_interpreter: Option<String>,
    print_rpath: bool,
    print_execstack: bool,
    clear_execstack: bool,
    set_execstack: bool,
    shrink_rpath: bool,
    allowed_prefixes: Vec<String>,
    remove_rpath: bool,
    set_rpath: Option<String>,
    add_rpath: Option<String>,
    force_rpath: bool,
    print_needed: bool,
    remove_needed: BTreeSet<String>,
    replace_needed: Vec<(String, String)>,
    add_needed: BTreeSet<String>,
    clear_symbol_version: BTreeSet<String>,
    no_default_lib: bool,
    add_debug_tag: bool,
    rename_symbols: Option<Vec<(String, String)>>,
    build_resolution_cache: bool,
    no_clobber: bool,
    set_root_prefix: Option<String>,
    restore_root_prefix: Option<String>,
}

enum Parsed {
    Run(Box<Plan>),
    Help,
    Version,
}

fn usage() -> String {
    "syntax: patchelf\n\
  [--set-interpreter FILENAME]\n\
  [--page-size SIZE]\n\
  [--print-interpreter]\n\
  [--print-os-abi]\t\tPrints 'EI_OSABI' field of ELF header\n\
  [--set-os-abi ABI]\t\tSets 'EI_OSABI' field of ELF header to ABI.\n\
  [--print-soname]\t\tPrints 'DT_SONAME' entry of .dynamic section. Raises an error if DT_SONAME doesn't exist\n\
  [--set-soname SONAME]\t\tSets 'DT_SONAME' entry to SONAME.\n\
  [--set-rpath RPATH]\n\
  [--add-rpath RPATH]\n\
  [--remove-rpath]\n\
  [--shrink-rpath]\n\
  [--allowed-rpath-prefixes PREFIXES]\t\tWith '--shrink-rpath', reject rpath entries not starting with the allowed prefix\n\
  [--print-rpath]\n\
  [--force-rpath]\n\
  [--add-needed LIBRARY]\n\
  [--remove-needed LIBRARY]\n\
  [--replace-needed LIBRARY NEW_LIBRARY]\n\
  [--print-needed]\n\
  [--no-default-lib]\n\
  [--no-sort]\t\tDo not sort program+section headers; useful for debugging patchelf.\n\
  [--clear-symbol-version SYMBOL]\n\
  [--add-debug-tag]\n\
  [--print-execstack]\t\tPrints whether the object requests an executable stack\n\
  [--clear-execstack]\n\
  [--set-execstack]\n\
  [--build-resolution-cache]\tRecord in an allocated '.note.nixos.ldcache' note (owner NixOS, with a PT_NOTE) where\n\
  \t\t\t\teach DT_NEEDED library resolves against the run path: '=PATH' for a file found now, '?DIR' for\n\
  \t\t\t\ta directory with $ORIGIN-style tokens or glibc-hwcaps. Re-running is a no-op; a different note\n\
  \t\t\t\talready present is an error. Changing the run path or the needed list drops the note.\n\
  \t\t\t\tNot with --force-rpath.\n\
  [--rename-dynamic-symbols NAME_MAP_FILE]\tRenames dynamic symbols. The map file should contain two symbols (old_name new_name) per line\n\
  [--no-clobber-old-sections]\tDo not fill the old copies of moved sections\n\
  [--set-root-prefix ROOT]\t(udocker) prefix interpreter, run path and absolute needed with ROOT/\n\
  [--restore-root-prefix ROOT]\t(udocker) undo --set-root-prefix ROOT\n\
  [-q|--quiet]\t\tno warnings and no error message (the exit status still tells)\n\
  [--output FILE]\n\
  [--debug]\n\
  [--version]\n\
  FILENAME...\n"
        .to_string()
}

/// `@file` arguments: the file's contents, verbatim.
fn resolve(arg: &str) -> Result<String> {
    match arg.strip_prefix('@') {
        Some(p) => std::fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| Error::io("getting info about", p, e)),
        None => Ok(arg.to_string()),
    }
}

fn parse(args: &[String]) -> Result<Parsed> {
    let mut p = Plan::default();
    let mut i = 0;
    let missing = || Error::unsupported("missing argument");
    macro_rules! next {
        () => {{
            i += 1;
            args.get(i).ok_or_else(missing)?.as_str()
        }};
    }
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--set-interpreter" | "--interpreter" => p.set_interpreter = Some(resolve(next!())?),
            "--page-size" => {
                let v = next!();
                let n: u64 = v
                    .parse()
                    .ok()
                    .filter(|n: &u64| *n > 0 && n.is_power_of_two())
                    .ok_or_else(|| {
                        Error::unsupported(format!("invalid argument to --page-size: '{v}'"))
                    })?;
                p.page_size = Some(n);
            }
            "--print-interpreter" => p.print_interpreter = true,
            "--print-os-abi" => p.print_os_abi = true,
            "--set-os-abi" => {
                let v = resolve(next!())?;
                p.set_os_abi = Some(
                    parse_os_abi(&v).ok_or_else(|| Error::unsupported("unrecognized OS ABI"))?,
                );
            }
            "--print-soname" => p.print_soname = true,
            "--set-soname" => p.set_soname = Some(resolve(next!())?),
            "--remove-rpath" => p.remove_rpath = true,
            "--shrink-rpath" => p.shrink_rpath = true,
            "--allowed-rpath-prefixes" => {
                p.allowed_prefixes = next!().split(':').map(str::to_string).collect()
            }
            "--set-rpath" => p.set_rpath = Some(resolve(next!())?),
            "--add-rpath" => p.add_rpath = Some(resolve(next!())?),
            "--print-rpath" => p.print_rpath = true,
            "--force-rpath" => p.force_rpath = true,
            "--print-needed" => p.print_needed = true,
            "--add-needed" => {
                p.add_needed.insert(resolve(next!())?);
            }
            "--remove-needed" => {
                p.remove_needed.insert(resolve(next!())?);
            }
            "--replace-needed" => {
                if i + 2 >= args.len() {
                    return Err(Error::unsupported("missing argument(s)"));
                }
                p.replace_needed
                    .push((args[i + 1].clone(), args[i + 2].clone()));
                i += 2;
            }
            "--clear-symbol-version" => {
                p.clear_symbol_version.insert(resolve(next!())?);
            }
            "--no-default-lib" => p.no_default_lib = true,
            "--no-sort" => {}
            "--add-debug-tag" => p.add_debug_tag = true,
            "--print-execstack" => p.print_execstack = true,
            "--clear-execstack" => p.clear_execstack = true,
            "--set-execstack" => p.set_execstack = true,
            "--rename-dynamic-symbols" => {
                let f = next!();
                let text = std::fs::read(f)
                    .map_err(|_| Error::unsupported(format!("Cannot open map file {f}")))?;
                let text = String::from_utf8_lossy(&text);
                // patchelf's reading: the first two words of each line; a blank line ends the map.
                let mut map: Vec<(String, String)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for (k, line) in text.lines().enumerate() {
                    let n = k + 1;
                    let mut w = line.split_whitespace();
                    let Some(from) = w.next() else { break };
                    let Some(to) = w.next() else {
                        return Err(Error::unsupported(format!(
                            "{f}:{n}: Map file line is missing the second element"
                        )));
                    };
                    if !seen.insert(from.to_string()) {
                        return Err(Error::unsupported(format!(
                            "{f}:{n}: Name '{from}' appears twice in the map file"
                        )));
                    }
                    if from.contains('@') || to.contains('@') {
                        return Err(Error::unsupported(format!(
                            "{f}:{n}: Name pair contains version tag: {from} {to}"
                        )));
                    }
                    map.push((from.to_string(), to.to_string()));
                }
                p.rename_symbols = Some(map);
            }
            "--no-clobber-old-sections" => p.no_clobber = true,
            "--output" => p.output = Some(resolve(next!())?),
            "--debug" => p.debug = true,
            "-q" | "--quiet" => p.quiet = true,
            "--set-root-prefix" => p.set_root_prefix = Some(resolve(next!())?),
            "--restore-root-prefix" => p.restore_root_prefix = Some(resolve(next!())?),
            "--help" | "-h" => return Ok(Parsed::Help),
            "--version" => return Ok(Parsed::Version),
            "--build-resolution-cache" => p.build_resolution_cache = true,
            _ => p.files.push(a.to_string()),
        }
        i += 1;
    }
    if p.files.is_empty() {
        return Err(Error::unsupported("missing filename"));
    }
    if p.output.is_some() && p.files.len() > 1 {
        return Err(Error::unsupported(
            "--output option only allowed with single input file",
        ));
    }
    if p.force_rpath && p.build_resolution_cache {
        // Refused as by the reference patchelf with this option, so that scripts behave the same with
        // either tool.
        return Err(Error::unsupported(
            "--build-resolution-cache cannot be combined with --force-rpath",
        ));
    }
    if p.set_rpath.is_some() && p.add_rpath.is_some() {
        return Err(Error::unsupported(
            "--set-rpath option not allowed with --add-rpath",
        ));
    }
    Ok(Parsed::Run(Box::new(p)))
}

/// Runs `patchelf ARGS…` (without argv\[0\]); returns the exit status.
pub fn main(args: &[String]) -> u8 {
    if args.is_empty() {
        eprint!("{}", usage());
        return 1;
    }
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let plan = match parse(args) {
        Ok(Parsed::Help) => {
            eprint!("{}", usage());
            return 0;
        }
        Ok(Parsed::Version) => {
            println!("patchelf {VERSION}");
            return 0;
        }
        Ok(Parsed::Run(p)) => p,
        Err(e) => {
            if !quiet {
                eprintln!("patchelf: {e}");
            }
            return 1;
        }
    };
    let debug = plan.debug || std::env::var_os("PATCHELF_DEBUG").is_some();
    let stdout = std::io::stdout();
    for f in &plan.files {
        let mut out = stdout.lock();
        let r = patch_one(&plan, f, debug, &mut out);
        let _ = out.flush();
        if let Err(e) = r {
            if !plan.quiet {
                eprintln!("patchelf: {e}");
            }
            return 1;
        }
    }
    0
}

fn flush_log(elf: &mut Elf, debug: bool, quiet: bool) {
    let d = elf.take_debug();
    if debug {
        for l in d {
            eprintln!("{l}");
        }
    }
    let w = elf.take_warnings();
    if !quiet {
        for l in w {
            eprintln!("{l}");
        }
    }
}

fn patch_one(p: &Plan, file: &str, debug: bool, out: &mut dyn Write) -> Result<()> {
    let path = Path::new(file);
    let meta = std::fs::metadata(path).map_err(|e| Error::io("getting info about", path, e))?;
    if debug {
        eprintln!("patching ELF file '{file}'");
    }
    let data = std::fs::read(path).map_err(|e| Error::io("opening", path, e))?;
    let mut elf = Elf::parse(data)?;
    elf.set_page_size(p.page_size);
    elf.set_clobber_old_sections(!p.no_clobber);
    let w = |out: &mut dyn Write, s: &str| -> Result<()> {
        writeln!(out, "{s}").map_err(|e| Error::io("writing", "<stdout>", e))
    };
    let r = (|| -> Result<()> {
        if let Some(root) = &p.set_root_prefix {
            elf.set_root_prefix(root)?;
        }
        if let Some(root) = &p.restore_root_prefix {
            elf.restore_root_prefix(root)?;
        }
        if p.print_interpreter {
            let i = elf.interpreter()?.ok_or_else(|| {
                Error::unsupported(
                    "cannot find section '.interp'. The input file is most likely statically linked",
                )
            })?;
            w(out, &i)?;
        }
        if p.print_os_abi {
            w(out, &os_abi_name(elf.os_abi()))?;
        }
        if let Some(v) = p.set_os_abi {
            elf.set_os_abi(v);
        }
        if p.print_soname {
            if let Some(s) = elf.soname()? {
                w(out, &s)?;
            }
        }
        if let Some(s) = &p.set_soname {
            elf.set_soname(s)?;
        }
        if let Some(i) = &p.set_interpreter {
            elf.set_interpreter(i)?;
        }
        if p.print_rpath {
            w(out, &elf.rpath()?.unwrap_or_default())?;
        }
        if p.print_execstack {
            let c = match elf.execstack() {
                Some(true) => 'X',
                Some(false) => '-',
                None => '?',
            };
            w(out, &format!("execstack: {c}"))?;
        }
        if p.clear_execstack {
            elf.set_execstack(false)?;
        } else if p.set_execstack {
            elf.set_execstack(true)?;
        }
        let op = if p.shrink_rpath {
            Some(RpathOp::Shrink {
                allowed_prefixes: p.allowed_prefixes.clone(),
            })
        } else if p.remove_rpath {
            Some(RpathOp::Remove)
        } else if let Some(r) = &p.set_rpath {
            Some(RpathOp::Set(r.clone()))
        } else {
            p.add_rpath.as_ref().map(|r| RpathOp::Add(r.clone()))
        };
        if let Some(op) = op {
            elf.modify_rpath(&op, p.force_rpath)?;
        }
        if p.print_needed {
            for n in elf.needed()? {
                w(out, &n)?;
            }
        }
        elf.remove_needed(&p.remove_needed)?;
        elf.replace_needed(&p.replace_needed)?;
        elf.add_needed(&p.add_needed)?;
        elf.clear_symbol_version(&p.clear_symbol_version)?;
        if p.no_default_lib {
            elf.no_default_lib()?;
        }
        if p.add_debug_tag {
            elf.add_debug_tag()?;
        }
        if p.build_resolution_cache {
            elf.build_resolution_cache()?;
        }
        if let Some(map) = &p.rename_symbols {
            elf.rename_dynamic_symbols(map)?;
        }
        elf.finish()
    })();
    flush_log(&mut elf, debug, p.quiet);
    r?;
    if elf.is_changed() || p.output.is_some() {
        let target = PathBuf::from(p.output.as_deref().unwrap_or(file));
        crate::write::write_image(&target, elf.bytes(), &meta)?;
    }
    Ok(())
}

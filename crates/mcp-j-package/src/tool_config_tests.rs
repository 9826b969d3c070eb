use std::cell::RefCell;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn npm_files(builtin: Option<&str>, global: Option<&str>, user: Option<&str>) -> NpmConfigFiles {
    let file = |path: &str, text: Option<&str>| match text {
        Some(text) => ConfigFile::new(path, text),
        None => ConfigFile::absent(path),
    };
    NpmConfigFiles {
        builtin: Some(file("/usr/lib/node_modules/npm/npmrc", builtin)),
        global: Some(file("/usr/etc/npmrc", global)),
        user: Some(file("/home/u/.npmrc", user)),
    }
}

/// A fake file system for the `read_*_config_files_with` functions; it records the reads.
struct FakeFs {
    files: BTreeMap<PathBuf, String>,
    reads: RefCell<Vec<PathBuf>>,
}

impl FakeFs {
    fn new(files: &[(&str, &str)]) -> Self {
        FakeFs {
            files: files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect(),
            reads: RefCell::new(Vec::new()),
        }
    }
}

impl ReadConfig for FakeFs {
    fn read(&self, path: &Path) -> Result<Option<String>, String> {
        self.reads.borrow_mut().push(path.to_path_buf());
        Ok(self.files.get(path).cloned())
    }
}

// ---- npm ------------------------------------------------------------------------------

#[test]
fn npm_defaults_with_no_configuration() {
    let s = npm_settings(&NpmConfigFiles::default(), &env(&[])).expect("settings");
    assert_eq!(s.registry, NPM_DEFAULT_REGISTRY);
    assert!(s.scoped_registries.is_empty());
    assert_eq!(s.cafile, None);
    assert!(s.ca.is_empty());
    assert!(s.strict_ssl);
    assert!(!s.registry_has_credentials);
    assert_eq!(s.sources, vec!["registry: npm's default"]);
    assert_eq!(s.hosts_to_allow(), vec![("registry.npmjs.org".to_string(), 443)]);
}

#[test]
fn npm_precedence_builtin_global_user_env() {
    let builtin = "registry=https://builtin.example/\nstrict-ssl=false\ncafile=/b.pem\n";
    let global = "registry=https://global.example/\ncafile=/g.pem\n";
    let user = "registry=https://user.example/\n";
    let files = npm_files(Some(builtin), Some(global), Some(user));

    let s = npm_settings(&files, &env(&[])).expect("settings");
    assert_eq!(s.registry, "https://user.example/");
    assert_eq!(s.cafile, Some(PathBuf::from("/g.pem")));
    assert!(!s.strict_ssl, "builtin's strict-ssl stays when nobody overrides it");
    assert!(s.sources.contains(&"registry: /home/u/.npmrc line 1".to_string()));
    assert!(s.sources.contains(&"cafile: /usr/etc/npmrc line 2".to_string()));

    let s = npm_settings(
        &files,
        &env(&[
            ("npm_config_registry", "https://env.example/"),
            ("NPM_CONFIG_STRICT_SSL", "true"),
        ]),
    )
    .expect("settings");
    assert_eq!(s.registry, "https://env.example/");
    assert!(s.strict_ssl);
    assert!(
        s.sources
            .contains(&"registry: environment variable npm_config_registry".to_string())
    );

    // An empty variable is skipped, as npm does.
    let s = npm_settings(&files, &env(&[("npm_config_registry", "")])).expect("settings");
    assert_eq!(s.registry, "https://user.example/");
}

#[test]
fn npm_env_key_spellings() {
    let files = NpmConfigFiles::default();
    for (name, value) in [
        ("npm_config_strict_ssl", "false"),
        ("NPM_CONFIG_STRICT_SSL", "false"),
        ("Npm_Config_Strict_Ssl", "false"),
        ("npm_config_strict-ssl", "false"),
    ] {
        let s = npm_settings(&files, &env(&[(name, value)])).expect("settings");
        assert!(!s.strict_ssl, "{name}");
    }
    let s = npm_settings(&files, &env(&[("NPM_CONFIG_CAFILE", "/etc/ssl/x.pem")])).expect("settings");
    assert_eq!(s.cafile, Some(PathBuf::from("/etc/ssl/x.pem")));
    // Keys in files are literal: `strict_ssl` there is not `strict-ssl`.
    let files = npm_files(None, None, Some("strict_ssl=false\n"));
    assert!(npm_settings(&files, &env(&[])).expect("settings").strict_ssl);
}

#[test]
fn npm_expands_variables() {
    let user = "registry=https://${REG_HOST}/npm/\n\
                cafile=${CERTS}/ca.pem\n\
                @corp:registry=https://${REG_HOST}${UNSET_OPT?}/corp/\n";
    let files = npm_files(None, None, Some(user));
    let e = env(&[("REG_HOST", "npm.corp.example:8443"), ("CERTS", "/etc/corp")]);
    let s = npm_settings(&files, &e).expect("settings");
    assert_eq!(s.registry, "https://npm.corp.example:8443/npm/");
    assert_eq!(s.cafile, Some(PathBuf::from("/etc/corp/ca.pem")));
    assert_eq!(
        s.scoped_registries,
        vec![("@corp".to_string(), "https://npm.corp.example:8443/corp/".to_string())]
    );
    assert_eq!(s.hosts_to_allow(), vec![("npm.corp.example".to_string(), 8443)]);
}

#[test]
fn npm_env_replace_rules() {
    let e = env(&[("A", "x")]);
    assert_eq!(npm_env_replace("${A}", &e), "x");
    assert_eq!(npm_env_replace("a${A}b${A}", &e), "axbx");
    assert_eq!(npm_env_replace("${B}", &e), "${B}");
    assert_eq!(npm_env_replace("${B?}", &e), "");
    assert_eq!(npm_env_replace("\\${A}", &e), "${A}");
    assert_eq!(npm_env_replace("\\\\${A}", &e), "\\x");
    assert_eq!(npm_env_replace("$A ${ ${}", &e), "$A ${ ${}");
    // In keys too.
    let files = npm_files(None, None, Some("${S}:registry=https://s.example/\n"));
    let s = npm_settings(&files, &env(&[("S", "@s")])).expect("settings");
    assert_eq!(
        s.scoped_registries,
        vec![("@s".to_string(), "https://s.example/".to_string())]
    );
}

#[test]
fn npm_scoped_registries_merge_by_scope() {
    let global = "@a:registry=https://a-global.example/\n@b:registry=https://b.example/\n";
    let user = "@a:registry = https://a-user.example/\n";
    let files = npm_files(None, Some(global), Some(user));
    let s = npm_settings(&files, &env(&[("npm_config_@c:registry", "http://c.example:8080/")])).expect("settings");
    assert_eq!(
        s.scoped_registries,
        vec![
            ("@a".to_string(), "https://a-user.example/".to_string()),
            ("@b".to_string(), "https://b.example/".to_string()),
            ("@c".to_string(), "http://c.example:8080/".to_string()),
        ]
    );
    assert_eq!(
        s.hosts_to_allow(),
        vec![
            ("registry.npmjs.org".to_string(), 443),
            ("a-user.example".to_string(), 443),
            ("b.example".to_string(), 443),
            ("c.example".to_string(), 8080),
        ]
    );
}

#[test]
fn npm_credentials_never_reach_the_settings() {
    let token = "npm_SeCrEtToKeN1234567890";
    let user = format!(
        "registry=https://registry.npmjs.org/\n\
         //registry.npmjs.org/:_authToken={token}\n\
         _authToken={token}\n\
         _auth={token}\n\
         _password={token}\n\
         username={token}\n\
         email={token}@example.com\n\
         certfile=/home/u/{token}.crt\n\
         keyfile=/home/u/{token}.key\n\
         otp={token}\n\
         @corp:_authToken={token}\n\
         //npm.corp.example/:_auth=\"{token}\"\n"
    );
    let files = npm_files(None, None, Some(&user));
    let e = env(&[
        ("npm_config__authToken", token),
        ("NPM_CONFIG_//registry.npmjs.org/:_authToken", token),
    ]);
    let s = npm_settings(&files, &e).expect("settings");
    let debug = format!("{s:?}");
    assert!(!debug.contains(token), "{debug}");
    assert!(!debug.contains("SeCrEt"), "{debug}");
    assert!(!format!("{:?}", s.jail_env()).contains(token));
    // The files' own Debug does not show their contents either.
    assert!(!format!("{files:?}").contains(token));
    // But the user is told, by key name.
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("/home/u/.npmrc line 2") && n.contains("credential"))
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("npm_config__authToken") && n.contains("credential"))
    );
}

#[test]
fn npm_registry_with_credentials_is_kept_but_flagged() {
    let files = npm_files(None, None, Some("registry=https://me:pa55@npm.corp.example/\n"));
    let s = npm_settings(&files, &env(&[])).expect("settings");
    assert!(s.registry_has_credentials);
    assert_eq!(s.registry, "https://me:pa55@npm.corp.example/");
    assert!(!s.sources.concat().contains("pa55"));
    assert_eq!(redacted(&s.registry), "https://***@npm.corp.example/");
}

#[test]
fn npm_rejects_bad_values_without_showing_credentials() {
    let files = npm_files(None, None, Some("registry=ftp://me:pa55@x.example/\n"));
    let err = npm_settings(&files, &env(&[])).expect_err("ftp registry");
    assert!(err.contains("/home/u/.npmrc line 1"), "{err}");
    assert!(!err.contains("pa55"), "{err}");

    let files = npm_files(None, None, Some("strict-ssl=maybe\n"));
    let err = npm_settings(&files, &env(&[])).expect_err("strict-ssl");
    assert!(err.contains("strict-ssl") && err.contains("line 1"), "{err}");

    let files = npm_files(None, None, Some("cafile=certs/ca.pem\n"));
    let err = npm_settings(&files, &env(&[])).expect_err("relative cafile");
    assert!(err.contains("relative"), "{err}");
}

#[test]
fn npm_ini_dialect() {
    let user = "; a comment\n\
                # another\n\
                \n\
                registry = \"https://quoted.example/\" \n\
                strict-ssl\n\
                cafile=~/certs/./ca.pem ; trailing comment\n\
                ca[]=\"-----BEGIN CERTIFICATE-----\\nAAA\\n-----END CERTIFICATE-----\"\n\
                ca[]='-----BEGIN CERTIFICATE-----\\nBBB\\n-----END CERTIFICATE-----'\n\
                =no key\n\
                [section]\n\
                registry=https://in-a-section.example/\n";
    let files = npm_files(None, None, Some(user));
    let s = npm_settings(&files, &env(&[("HOME", "/home/u")])).expect("settings");
    assert_eq!(s.registry, "https://quoted.example/");
    assert!(s.strict_ssl);
    assert_eq!(s.cafile, Some(PathBuf::from("/home/u/certs/ca.pem")));
    assert_eq!(
        s.ca,
        vec![
            "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----".to_string(),
            // Single quotes are stripped and the rest is not JSON: escapes stay as written.
            "-----BEGIN CERTIFICATE-----\\nBBB\\n-----END CERTIFICATE-----".to_string(),
        ]
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("/home/u/.npmrc line 9") && n.contains("no key"))
    );
    assert!(s.notes.iter().any(|n| n.contains("line 10") && n.contains("[section]")));
    assert_eq!(npm_ini_unquote(r"a\;b\#c\d ; x"), r"a;b#c\d");
    assert_eq!(npm_ini_unquote("\"not json"), "\"not json");
}

#[test]
fn npm_ca_from_env_is_split_on_blank_lines_and_null_unsets() {
    let e = env(&[("npm_config_ca", "CERT-A\n\nCERT-B")]);
    let s = npm_settings(&NpmConfigFiles::default(), &e).expect("settings");
    assert_eq!(s.ca, vec!["CERT-A", "CERT-B"]);
    let files = npm_files(Some("cafile=/b.pem\n"), None, Some("cafile=null\n"));
    let s = npm_settings(&files, &env(&[])).expect("settings");
    assert_eq!(s.cafile, None);
}

#[test]
fn npm_proxies_are_reported_without_values() {
    let files = npm_files(
        None,
        Some("https-proxy=http://me:pw@proxy.example:3128/\n"),
        Some("proxy=http://proxy.example:3128/\n"),
    );
    let s = npm_settings(&files, &env(&[])).expect("settings");
    assert_eq!(
        s.ignored_proxies,
        vec![
            "proxy (/home/u/.npmrc line 1)".to_string(),
            "https-proxy (/usr/etc/npmrc line 1)".to_string(),
        ]
    );
    assert!(!format!("{s:?}").contains("pw@"));
}

/// This machine: npm 11 at /usr/lib/node_modules/npm (no builtin npmrc), node at
/// /usr/bin/node, so the global npmrc is /usr/etc/npmrc, which sets the system CA bundle.
#[test]
fn npm_this_machine_fixture() {
    let fs = FakeFs::new(&[("/usr/etc/npmrc", "cafile=/etc/ssl/certs/ca-certificates.crt\n")]);
    let install = NpmInstall {
        node: Some(PathBuf::from("/usr/bin/node")),
        npm_dir: Some(PathBuf::from("/usr/lib/node_modules/npm")),
    };
    let e = env(&[("HOME", "/root"), ("PATH", "/usr/bin:/bin")]);
    let files = read_npm_config_files_with(&fs, &e, Some(Path::new("/root")), &install).expect("read");
    assert_eq!(
        *fs.reads.borrow(),
        vec![
            PathBuf::from("/root/.npmrc"),
            PathBuf::from("/usr/lib/node_modules/npm/npmrc"),
            PathBuf::from("/usr/etc/npmrc"),
        ]
    );
    let s = npm_settings(&files, &e).expect("settings");
    assert_eq!(s.registry, NPM_DEFAULT_REGISTRY);
    assert_eq!(s.cafile, Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt")));
    assert!(s.strict_ssl);
    assert_eq!(
        s.sources,
        vec![
            "registry: npm's default".to_string(),
            "cafile: /usr/etc/npmrc line 1".to_string(),
        ]
    );
    assert_eq!(
        s.read_only_paths(),
        vec![PathBuf::from("/etc/ssl/certs/ca-certificates.crt")]
    );
    let jail = s.jail_env();
    assert!(jail.contains(&(
        "npm_config_cafile".to_string(),
        "/etc/ssl/certs/ca-certificates.crt".to_string()
    )));
    assert!(jail.contains(&("npm_config_userconfig".to_string(), "/dev/null".to_string())));
}

#[test]
fn npm_global_file_location() {
    let install = NpmInstall {
        node: Some(PathBuf::from("/opt/node/bin/node")),
        npm_dir: None,
    };
    let global_read = |fs: &FakeFs, e: &BTreeMap<String, String>| {
        read_npm_config_files_with(fs, e, Some(Path::new("/home/u")), &install)
            .expect("read")
            .global
            .map(|f| f.path)
    };
    let fs = FakeFs::new(&[]);
    assert_eq!(global_read(&fs, &env(&[])), Some(PathBuf::from("/opt/node/etc/npmrc")));
    assert_eq!(
        global_read(&fs, &env(&[("PREFIX", "/p")])),
        Some(PathBuf::from("/p/etc/npmrc"))
    );
    assert_eq!(
        global_read(&fs, &env(&[("DESTDIR", "/stage")])),
        Some(PathBuf::from("/stage/opt/node/etc/npmrc"))
    );
    assert_eq!(
        global_read(&fs, &env(&[("npm_config_prefix", "/env-prefix")])),
        Some(PathBuf::from("/env-prefix/etc/npmrc"))
    );
    // The user file may move the prefix, or name the global file itself.
    let fs = FakeFs::new(&[("/home/u/.npmrc", "prefix=~/.npm-global\n")]);
    assert_eq!(
        global_read(&fs, &env(&[])),
        Some(PathBuf::from("/home/u/.npm-global/etc/npmrc"))
    );
    let fs = FakeFs::new(&[("/custom/npmrc", "globalconfig=/etc/npmrc\n")]);
    assert_eq!(
        global_read(&fs, &env(&[("NPM_CONFIG_USERCONFIG", "/custom/npmrc")])),
        Some(PathBuf::from("/etc/npmrc"))
    );
    assert_eq!(fs.reads.borrow()[0], PathBuf::from("/custom/npmrc"));
    // Without a node binary or a prefix, there is no global file.
    let none = NpmInstall::default();
    let files = read_npm_config_files_with(&FakeFs::new(&[]), &env(&[]), None, &none).expect("read");
    assert_eq!(files.global, None);
    assert_eq!(files.user, None);
}

// ---- pip ------------------------------------------------------------------------------

fn pip_files(global: &[(&str, &str)], user: &[(&str, &str)]) -> PipConfigFiles {
    PipConfigFiles {
        global: global.iter().map(|(p, t)| ConfigFile::new(*p, *t)).collect(),
        user: user.iter().map(|(p, t)| ConfigFile::new(*p, *t)).collect(),
        site: None,
        env_file: None,
    }
}

#[test]
fn pip_defaults_with_no_configuration() {
    let s = pip_settings(&PipConfigFiles::default(), &env(&[])).expect("settings");
    assert_eq!(s.index_url, PYPI_DEFAULT_INDEX);
    assert!(s.uses_pypi());
    assert!(s.extra_index_urls.is_empty() && s.find_links.is_empty());
    assert_eq!(s.cert, None);
    assert!(!s.no_index && !s.index_has_credentials);
    assert_eq!(
        s.hosts_to_allow(),
        vec![("pypi.org".to_string(), 443), (PYPI_FILES_HOST.to_string(), 443)]
    );
}

/// This machine: /etc/pip.conf sets the CA bundle in [global]; the environment sets
/// PIP_CERT to the same bundle and PIP_FIND_LINKS to a local wheel directory.
#[test]
fn pip_this_machine_fixture() {
    let fs = FakeFs::new(&[("/etc/pip.conf", "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")]);
    let e = env(&[
        ("HOME", "/root"),
        ("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"),
        ("PIP_FIND_LINKS", "/opt/wheels"),
        ("PIP_DEFAULT_TIMEOUT", "180"),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    ]);
    let files = read_pip_config_files_with(&fs, &e, Some(Path::new("/root"))).expect("read");
    assert_eq!(
        *fs.reads.borrow(),
        vec![
            PathBuf::from("/etc/xdg/pip/pip.conf"),
            PathBuf::from("/etc/pip.conf"),
            PathBuf::from("/root/.pip/pip.conf"),
            PathBuf::from("/root/.config/pip/pip.conf"),
        ]
    );
    let s = pip_settings(&files, &e).expect("settings");
    assert_eq!(s.index_url, PYPI_DEFAULT_INDEX);
    assert_eq!(s.cert, Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt")));
    assert_eq!(s.find_links, vec!["/opt/wheels"]);
    assert!(!s.no_index);
    assert_eq!(
        s.sources,
        vec![
            "find-links: PIP_FIND_LINKS".to_string(),
            "cert: PIP_CERT".to_string(),
            "index-url: pip's default".to_string(),
        ]
    );
    assert_eq!(
        s.hosts_to_allow(),
        vec![("pypi.org".to_string(), 443), (PYPI_FILES_HOST.to_string(), 443)]
    );
    assert_eq!(
        s.read_only_paths(),
        vec![
            PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            PathBuf::from("/opt/wheels")
        ]
    );
    // Without the environment, the file's cert still applies.
    let s = pip_settings(&files, &env(&[])).expect("settings");
    assert_eq!(s.cert, Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt")));
    assert_eq!(s.sources[0], "cert: /etc/pip.conf [global] line 2");
}

#[test]
fn pip_file_precedence_global_user_site_env_file() {
    let mut files = pip_files(
        &[
            (
                "/etc/xdg/pip/pip.conf",
                "[global]\nindex-url = https://xdg.example/simple\ntrusted-host = xdg.example\n",
            ),
            ("/etc/pip.conf", "[global]\nindex-url = https://etc.example/simple\n"),
        ],
        &[
            (
                "/u/.pip/pip.conf",
                "[global]\nindex-url = https://legacy.example/simple\ncert = /legacy.pem\n",
            ),
            (
                "/u/.config/pip/pip.conf",
                "[global]\nindex-url = https://user.example/simple\n",
            ),
        ],
    );
    let s = pip_settings(&files, &env(&[])).expect("settings");
    assert_eq!(s.index_url, "https://user.example/simple");
    assert_eq!(s.cert, Some(PathBuf::from("/legacy.pem")));
    assert_eq!(s.trusted_hosts, vec!["xdg.example"]);

    files.site = Some(ConfigFile::new(
        "/venv/pip.conf",
        "[global]\nindex-url = https://site.example/simple\n",
    ));
    let s = pip_settings(&files, &env(&[])).expect("settings");
    assert_eq!(s.index_url, "https://site.example/simple");

    // PIP_CONFIG_FILE's file comes last among files, and turns the user files off.
    files.env_file = Some(ConfigFile::new(
        "/cfg/pip.conf",
        "[global]\nextra-index-url = https://extra.example/simple\n",
    ));
    let e = env(&[("PIP_CONFIG_FILE", "/cfg/pip.conf")]);
    let s = pip_settings(&files, &e).expect("settings");
    assert_eq!(s.index_url, "https://site.example/simple");
    assert_eq!(s.cert, None, "the legacy user file is skipped");
    assert_eq!(s.extra_index_urls, vec!["https://extra.example/simple"]);
    assert!(s.notes.iter().any(|n| n.contains("user files are skipped")));

    // A PIP_CONFIG_FILE that does not exist leaves the user files in.
    files.env_file = Some(ConfigFile::absent("/cfg/pip.conf"));
    let s = pip_settings(&files, &e).expect("settings");
    assert_eq!(s.cert, Some(PathBuf::from("/legacy.pem")));

    // The environment beats every file.
    let e = env(&[("PIP_INDEX_URL", "https://env.example/simple")]);
    let s = pip_settings(&files, &e).expect("settings");
    assert_eq!(s.index_url, "https://env.example/simple");
    assert!(!s.uses_pypi());
    assert_eq!(
        s.hosts_to_allow(),
        vec![("env.example".to_string(), 443)],
        "no files host guessed for another index"
    );
}

#[test]
fn pip_install_section_beats_global_in_any_file() {
    let files = pip_files(
        &[(
            "/etc/pip.conf",
            "[install]\nindex-url = https://install.example/simple\n",
        )],
        &[(
            "/u/.config/pip/pip.conf",
            "[global]\nindex-url = https://global.example/simple\nno-index = yes\n\
             [install]\nno-index = no\n[download]\nindex-url = https://dl.example/simple\n",
        )],
    );
    let s = pip_settings(&files, &env(&[])).expect("settings");
    assert_eq!(s.index_url, "https://install.example/simple");
    assert!(!s.no_index);
    // An empty value does not override.
    let files = pip_files(
        &[(
            "/etc/pip.conf",
            "[global]\nindex-url = https://global.example/simple\n[install]\nindex-url =\n",
        )],
        &[],
    );
    let s = pip_settings(&files, &env(&[("PIP_INDEX_URL", "")])).expect("settings");
    assert_eq!(s.index_url, "https://global.example/simple");
}

#[test]
fn pip_config_file_dev_null_turns_files_off() {
    let mut files = pip_files(
        &[("/etc/pip.conf", "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")],
        &[(
            "/u/.config/pip/pip.conf",
            "[global]\nindex-url = https://u.example/simple\n",
        )],
    );
    files.site = Some(ConfigFile::new("/venv/pip.conf", "[global]\nno-index = true\n"));
    let e = env(&[("PIP_CONFIG_FILE", "/dev/null"), ("PIP_TRUSTED_HOST", "a b")]);
    let s = pip_settings(&files, &e).expect("settings");
    assert_eq!(s.cert, None);
    assert_eq!(s.index_url, PYPI_DEFAULT_INDEX);
    assert!(!s.no_index);
    assert_eq!(s.trusted_hosts, vec!["a", "b"]);
    // And the reader does not try to read /dev/null as a file.
    let fs = FakeFs::new(&[]);
    let read = read_pip_config_files_with(&fs, &e, None).expect("read");
    assert_eq!(read.env_file, None);
    assert!(!fs.reads.borrow().contains(&PathBuf::from("/dev/null")));
}

#[test]
fn pip_lists_continuation_lines_and_key_spellings() {
    let text = "[global]\n\
                find_links =\n    /opt/wheels\n    https://wheels.example/simple/\n\
                \n    file:///srv/wheels\n\
                # a comment between keys\n\
                Extra-Index-URL: https://a.example/simple https://b.example:8443/simple\n\
                trusted-host =\n\ta.example\n\tb.example\n\
                [install]\n\
                --no_index = ON\n";
    let files = pip_files(&[("/etc/pip.conf", text)], &[]);
    let s = pip_settings(&files, &env(&[])).expect("settings");
    assert_eq!(
        s.find_links,
        vec!["/opt/wheels", "https://wheels.example/simple/", "file:///srv/wheels"]
    );
    assert_eq!(
        s.extra_index_urls,
        vec!["https://a.example/simple", "https://b.example:8443/simple"]
    );
    assert_eq!(s.trusted_hosts, vec!["a.example", "b.example"]);
    assert!(s.no_index);
    // With no-index the indexes are not destinations; find-links are.
    assert_eq!(s.hosts_to_allow(), vec![("wheels.example".to_string(), 443)]);
    assert_eq!(
        s.read_only_paths(),
        vec![PathBuf::from("/opt/wheels"), PathBuf::from("/srv/wheels")]
    );
    // Environment lists are whitespace separated and replace the file's list.
    let e = env(&[(
        "PIP_EXTRA_INDEX_URL",
        "https://c.example/simple  https://d.example/simple",
    )]);
    let s = pip_settings(&files, &e).expect("settings");
    assert_eq!(
        s.extra_index_urls,
        vec!["https://c.example/simple", "https://d.example/simple"]
    );
}

#[test]
fn pip_comment_inside_a_continued_value() {
    let text = "[global]\nfind-links = /a\n  # not part of the value\n  /b\n";
    let s = pip_settings(&pip_files(&[("/etc/pip.conf", text)], &[]), &env(&[])).expect("s");
    assert_eq!(s.find_links, vec!["/a", "/b"]);
}

#[test]
fn pip_default_section_is_inherited() {
    let text = "[DEFAULT]\ncert = /d.pem\n[global]\n[install]\ncert = /i.pem\n";
    let s = pip_settings(&pip_files(&[("/etc/pip.conf", text)], &[]), &env(&[])).expect("s");
    assert_eq!(s.cert, Some(PathBuf::from("/i.pem")));
    let text = "[DEFAULT]\ncert = /d.pem\n[global]\n";
    let s = pip_settings(&pip_files(&[("/etc/pip.conf", text)], &[]), &env(&[])).expect("s");
    assert_eq!(s.cert, Some(PathBuf::from("/d.pem")));
}

#[test]
fn pip_malformed_files_name_file_and_line() {
    let cases = [
        ("cert = /x.pem\n", "line 1", "before any [section]"),
        ("[global]\ncert /x.pem\n", "line 2", "no `=`"),
        ("[global]\ncert = /a\n[install]\n\n[global]\n", "line 5", "twice"),
        ("[global]\ncert = /a\nCERT = /b\n", "line 3", "twice"),
        ("[global]\n= /a\n", "line 2", "no key"),
    ];
    for (text, line, what) in cases {
        let files = pip_files(&[("/etc/pip.conf", text)], &[]);
        let err = pip_settings(&files, &env(&[])).expect_err(text);
        assert!(err.starts_with("/etc/pip.conf "), "{err}");
        assert!(err.contains(line) && err.contains(what), "{text:?}: {err}");
    }
    let files = pip_files(&[], &[]);
    let err = pip_settings(&files, &env(&[("PIP_NO_INDEX", "maybe")])).expect_err("bool");
    assert!(err.contains("PIP_NO_INDEX"), "{err}");
}

#[test]
fn pip_credentials_in_urls_are_flagged_and_client_cert_ignored() {
    let text = "[global]\nindex-url = https://me:s3cr3t@pypi.corp.example/simple\n\
                client-cert = /home/u/me.pem\n";
    let files = pip_files(&[("/etc/pip.conf", text)], &[]);
    let s = pip_settings(&files, &env(&[("PIP_PROXY", "http://p:3128")])).expect("settings");
    assert!(s.index_has_credentials);
    assert_eq!(s.index_url, "https://me:s3cr3t@pypi.corp.example/simple");
    assert!(!s.sources.concat().contains("s3cr3t"));
    assert!(!s.notes.concat().contains("s3cr3t"));
    assert!(!format!("{s:?}").contains("me.pem"));
    assert!(s.notes.iter().any(|n| n.contains("client-cert")));
    assert_eq!(s.ignored_proxies, vec!["proxy (PIP_PROXY)"]);
    assert_eq!(s.hosts_to_allow(), vec![("pypi.corp.example".to_string(), 443)]);
}

#[test]
fn pip_cert_expands_home() {
    let files = pip_files(&[("/etc/pip.conf", "[global]\ncert = ~/ca.pem\n")], &[]);
    let s = pip_settings(&files, &env(&[("HOME", "/home/u")])).expect("settings");
    assert_eq!(s.cert, Some(PathBuf::from("/home/u/ca.pem")));
}

#[test]
fn pip_reader_follows_xdg_and_virtual_env() {
    let fs = FakeFs::new(&[]);
    let e = env(&[
        ("XDG_CONFIG_DIRS", "/a:/b"),
        ("XDG_CONFIG_HOME", "/cfg"),
        ("VIRTUAL_ENV", "/venv"),
        ("PIP_CONFIG_FILE", "/explicit.conf"),
    ]);
    read_pip_config_files_with(&fs, &e, Some(Path::new("/home/u"))).expect("read");
    assert_eq!(
        *fs.reads.borrow(),
        [
            "/a/pip/pip.conf",
            "/b/pip/pip.conf",
            "/etc/pip.conf",
            "/home/u/.pip/pip.conf",
            "/cfg/pip/pip.conf",
            "/venv/pip.conf",
            "/explicit.conf",
        ]
        .map(PathBuf::from)
    );
}

#[test]
fn pip_jail_env() {
    let e = env(&[
        ("PIP_FIND_LINKS", "/opt/wheels"),
        ("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"),
    ]);
    let s = pip_settings(&PipConfigFiles::default(), &e).expect("settings");
    assert_eq!(
        s.jail_env(),
        vec![
            ("PIP_CONFIG_FILE".to_string(), "/dev/null".to_string()),
            ("PIP_INDEX_URL".to_string(), PYPI_DEFAULT_INDEX.to_string()),
            ("PIP_FIND_LINKS".to_string(), "/opt/wheels".to_string()),
            ("PIP_CERT".to_string(), "/etc/ssl/certs/ca-certificates.crt".to_string()),
        ]
    );
}

// ---- URLs -----------------------------------------------------------------------------

#[test]
fn hosts_for_urls_and_paths() {
    let hosts = hosts_to_allow([
        "https://registry.npmjs.org/",
        "http://mirror.example/simple",
        "https://Custom.Example:8443/npm/",
        "http://custom.example:8080",
        "https://registry.npmjs.org/other/",
        "https://me:pw@private.example/simple",
        "https://[::1]:4873/",
        "https://[2001:db8::1]/",
        "file:///opt/wheels",
        "/opt/wheels",
        "./relative/dir",
        "ftp://ftp.example/",
        "https://bad.example:99999/",
        "https://:443/",
    ]);
    assert_eq!(
        hosts,
        vec![
            ("registry.npmjs.org".to_string(), 443),
            ("mirror.example".to_string(), 80),
            ("custom.example".to_string(), 8443),
            ("custom.example".to_string(), 8080),
            ("private.example".to_string(), 443),
            ("::1".to_string(), 4873),
            ("2001:db8::1".to_string(), 443),
        ]
    );
}

#[test]
fn redaction() {
    assert_eq!(
        redacted("https://user:pass@host.example/simple"),
        "https://***@host.example/simple"
    );
    assert_eq!(redacted("https://tok@host.example"), "https://***@host.example");
    assert_eq!(redacted("https://host.example/a@b"), "https://host.example/a@b");
    assert_eq!(redacted("/opt/wheels"), "/opt/wheels");
    assert!(has_credentials("https://u:p@h/"));
    assert!(!has_credentials("https://h/a@b"));
}

#[test]
fn host_files_reads_caps_and_reports_absence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("npmrc");
    assert_eq!(HostFiles.read(&path), Ok(None));
    std::fs::write(&path, "registry=https://x.example/\n").expect("write");
    assert_eq!(
        HostFiles.read(&path),
        Ok(Some("registry=https://x.example/\n".to_string()))
    );
    std::fs::write(&path, vec![b'a'; MAX_CONFIG_FILE_BYTES as usize + 1]).expect("write");
    assert!(HostFiles.read(&path).is_err());
    std::fs::write(&path, [0xff, 0xfe]).expect("write");
    assert!(HostFiles.read(&path).is_err());
}

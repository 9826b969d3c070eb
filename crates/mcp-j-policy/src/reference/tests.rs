use super::*;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn registry(org: &str, name: &str, selector: Selector) -> PackageRef {
    PackageRef::Registry(RegistryRef {
        org: org.into(),
        name: name.into(),
        selector,
    })
}

fn version(v: &str) -> Selector {
    Selector::Version(v.into())
}

fn npm(name: &str, version: Option<&str>) -> PackageRef {
    PackageRef::Npm(NpmRef::Package {
        name: name.into(),
        version: version.map(Into::into),
    })
}

fn pypi(name: &str, version: Option<&str>) -> PackageRef {
    PackageRef::Pypi(PypiRef::Package {
        name: name.into(),
        version: version.map(Into::into),
    })
}

#[test]
fn accepted_references_parse_to_their_variant() {
    let digest: Digest = format!("sha256:{HEX}").parse().unwrap();
    let long_part = "a".repeat(MAX_NAME_PART);
    let long_version = "1".repeat(MAX_VERSION);
    let cases: Vec<(String, PackageRef)> = vec![
        ("acme/hello@1.2.3".into(), registry("acme", "hello", version("1.2.3"))),
        ("acme/hello@latest".into(), registry("acme", "hello", Selector::Latest)),
        ("acme/hello".into(), registry("acme", "hello", Selector::Latest)),
        (
            format!("acme/hello@sha256:{HEX}"),
            registry("acme", "hello", Selector::ManifestDigest(digest)),
        ),
        (
            "Acme_1/my-srv_2@v2".into(),
            registry("Acme_1", "my-srv_2", version("v2")),
        ),
        (
            "a/b@1.0.0-rc.1+build.5".into(),
            registry("a", "b", version("1.0.0-rc.1+build.5")),
        ),
        ("a/b@2024.06.01".into(), registry("a", "b", version("2024.06.01"))),
        ("a/b@LATEST".into(), registry("a", "b", version("LATEST"))),
        (
            format!("{long_part}/{long_part}@{long_version}"),
            registry(&long_part, &long_part, version(&long_version)),
        ),
        ("npm:@scope/name@1.2.3".into(), npm("@scope/name", Some("1.2.3"))),
        ("npm:@scope/name".into(), npm("@scope/name", None)),
        ("npm:name@1.2.3".into(), npm("name", Some("1.2.3"))),
        ("npm:name@next".into(), npm("name", Some("next"))),
        (
            "npm:@modelcontextprotocol/server-filesystem".into(),
            npm("@modelcontextprotocol/server-filesystem", None),
        ),
        ("npm:lodash.get@4.4.2".into(), npm("lodash.get", Some("4.4.2"))),
        ("npm:JSONStream".into(), npm("JSONStream", None)),
        (
            format!("npm:{}", "a".repeat(MAX_NPM_NAME)),
            npm(&"a".repeat(MAX_NPM_NAME), None),
        ),
        (
            "npm:./file.tgz".into(),
            PackageRef::Npm(NpmRef::Archive("./file.tgz".into())),
        ),
        (
            "npm:../dir/file.tar.gz".into(),
            PackageRef::Npm(NpmRef::Archive("../dir/file.tar.gz".into())),
        ),
        (
            "npm:/abs/srv-1.0.0.tgz".into(),
            PackageRef::Npm(NpmRef::Archive("/abs/srv-1.0.0.tgz".into())),
        ),
        (
            "pypi:mcp-server-fetch==1.2.3".into(),
            pypi("mcp-server-fetch", Some("1.2.3")),
        ),
        ("pypi:mcp-server-fetch".into(), pypi("mcp-server-fetch", None)),
        (
            "pypi:Foo.Bar_baz==1!2.0.post1+local.7".into(),
            pypi("Foo.Bar_baz", Some("1!2.0.post1+local.7")),
        ),
        ("pypi:x".into(), pypi("x", None)),
        (
            "pypi:./dist/srv-1.0-py3-none-any.whl".into(),
            PackageRef::Pypi(PypiRef::Archive("./dist/srv-1.0-py3-none-any.whl".into())),
        ),
        (
            "pypi:/tmp/srv-1.0.tar.gz".into(),
            PackageRef::Pypi(PypiRef::Archive("/tmp/srv-1.0.tar.gz".into())),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(&text), Ok(expected.clone()), "{text}");
        let shown = expected.to_string();
        assert_eq!(parse(&shown), Ok(expected), "{text} shown as {shown}");
    }
}

#[test]
fn refused_references_say_what_is_wrong_and_show_an_example() {
    let long_part = "a".repeat(MAX_NAME_PART + 1);
    let long_version = "1".repeat(MAX_VERSION + 1);
    // (input, a phrase the error must hold)
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "empty"),
        ("acme".into(), "is not a package reference"),
        ("acme@1.0".into(), "is not a package reference"),
        ("/hello@1.0".into(), "empty organisation"),
        ("acme/@1.0".into(), "empty package name"),
        ("acme/hello@".into(), "empty version"),
        ("acme/he/llo@1".into(), "holds `/`"),
        ("ac.me/hello@1".into(), "holds `.`"),
        ("acme/hélló@1".into(), "holds `é`"),
        ("acme/hello world".into(), "holds ` `"),
        (format!("{long_part}/x@1"), "more than 128"),
        (format!("x/{long_part}@1"), "more than 128"),
        (format!("a/b@{long_version}"), "more than 128"),
        ("a/b@^1.2".into(), "holds `^`"),
        ("a/b@>=1".into(), "holds `>`"),
        ("a/b@1.0@2".into(), "holds `@`"),
        ("a/b@1 .0".into(), "holds ` `"),
        ("a/b@.1".into(), "must start with a letter or digit"),
        ("a/b@-1".into(), "must start with a letter or digit"),
        ("a/b@sha256:abc".into(), "is not a manifest digest"),
        (format!("a/b@sha256:{}", HEX.to_uppercase()), "is not a manifest digest"),
        (format!("a/b@sha256:{HEX}0"), "is not a manifest digest"),
        (format!("a/b@sha512:{HEX}"), "holds `:`"),
        ("docker:alpine".into(), "not a kind of package"),
        ("NPM:foo".into(), "not a kind of package"),
        ("https://example.com/x".into(), "not a kind of package"),
        ("npm:".into(), "names no package"),
        ("npm:@".into(), "not an npm name"),
        ("npm:@scope".into(), "not an npm name"),
        ("npm:@scope/".into(), "not an npm name"),
        ("npm:@/name".into(), "not an npm name"),
        ("npm:.hidden".into(), "not an npm name"),
        ("npm:_under".into(), "not an npm name"),
        ("npm:a/b".into(), "not an npm name"),
        ("npm:na me".into(), "not an npm name"),
        ("npm:name@".into(), "empty version"),
        ("npm:name@^1.2.3".into(), "is a range"),
        ("npm:name@~1.2".into(), "is a range"),
        ("npm:name@>=1".into(), "is a range"),
        ("npm:name@*".into(), "is a range"),
        ("npm:name@1.x || 2".into(), "is a range"),
        ("npm:name@1@2".into(), "holds `@`"),
        (format!("npm:{}", "a".repeat(MAX_NPM_NAME + 1)), "more than npm's 214"),
        ("npm:./file.zip".into(), "ends with `.tgz` or `.tar.gz`"),
        ("npm:./".into(), "ends with `.tgz` or `.tar.gz`"),
        ("npm:/x\0.tgz".into(), "NUL"),
        ("pypi:".into(), "names no package"),
        ("pypi:name>=1.0".into(), "not an exact pin"),
        ("pypi:name~=1.0".into(), "not an exact pin"),
        ("pypi:name===1.0".into(), "not an exact version"),
        ("pypi:name!=1.0".into(), "not an exact pin"),
        ("pypi:name@1.0".into(), "not an exact pin"),
        ("pypi:name[cli]==1".into(), "not an exact pin"),
        ("pypi:name==".into(), "empty version"),
        ("pypi:name==1 0".into(), "not an exact version"),
        ("pypi:-name".into(), "not a PyPI name"),
        ("pypi:name-".into(), "not a PyPI name"),
        ("pypi:na/me".into(), "not a PyPI name"),
        (format!("pypi:{}", "a".repeat(MAX_PYPI_NAME + 1)), "more than 128"),
        ("pypi:./srv.egg".into(), "ends with `.whl` or `.tar.gz`"),
    ];
    for (text, phrase) in cases {
        let error = parse(&text).expect_err(&text);
        assert!(error.contains(phrase), "{text:?}: {error}");
        assert!(error.contains("e.g. `"), "{text:?} shows no example: {error}");
    }
}

#[test]
fn the_resolve_parameter_is_the_version_latest_or_the_digest() {
    let digest = format!("sha256:{HEX}");
    let cases = [
        ("a/b@1.2.3", "1.2.3"),
        ("a/b", "latest"),
        ("a/b@latest", "latest"),
        (&format!("a/b@{digest}"), digest.as_str()),
    ];
    for (text, param) in cases {
        let Ok(PackageRef::Registry(r)) = parse(text) else {
            panic!("{text} is a registry reference");
        };
        assert_eq!(r.selector.as_ref_param(), param, "{text}");
        assert_eq!(r.package_id(), "a/b");
    }
    assert_eq!(
        "acme/hello".parse::<PackageRef>().map(|r| r.to_string()),
        Ok("acme/hello@latest".into())
    );
}

proptest::proptest! {
    #[test]
    fn any_text_is_refused_or_shown_back_the_same(text in "\\PC{0,80}") {
        if let Ok(parsed) = parse(&text) {
            proptest::prop_assert_eq!(parse(&parsed.to_string()), Ok(parsed));
        }
    }

    #[test]
    fn any_registry_reference_of_the_alphabet_round_trips(
        org in "[A-Za-z0-9_-]{1,20}",
        name in "[A-Za-z0-9_-]{1,20}",
        version in "[A-Za-z0-9][A-Za-z0-9._+-]{0,20}",
    ) {
        let text = format!("{org}/{name}@{version}");
        let expected = if version == "latest" { Selector::Latest } else { Selector::Version(version.clone()) };
        proptest::prop_assert_eq!(parse(&text), Ok(registry(&org, &name, expected)));
    }
}

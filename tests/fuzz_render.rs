#[test]
fn scratch() {
    for text in [
        "%YAML 1.2\n---\na: 1\n",
        "%YAML 1.1\n---\na: 1\n",
        "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
        "\u{feff}a: 1\n",
        "--- \u{feff}a: 1\n",
    ] {
        let r: Result<serde_json::Value, _> = serde_yaml::from_str(text);
        eprintln!("{text:?}: {r:?}");
    }
}

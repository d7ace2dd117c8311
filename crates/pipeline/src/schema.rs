//! The JSON Schema of the pipeline file, generated from the same types the parser uses, with
//! the `with` block of each stage type from its [`StageSpec`](crate::with::StageSpec).

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::model::PipelineFile;
use crate::with::Catalog;

/// The schema as pretty JSON (what `pipelines/schema.json` holds).
pub fn schema_json(catalog: &Catalog) -> String {
    let value = schema(catalog);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// The schema of a pipeline file for the stage types of `catalog`.
pub fn schema(catalog: &Catalog) -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let root = generator.root_schema_for::<PipelineFile>();
    let mut root = root.to_value();
    let mut by_type = Vec::new();
    let names = catalog.names();
    for spec in catalog.specs() {
        let with = spec.with_schema(&mut generator).to_value();
        by_type.push(json!({
            "if": { "properties": { "uses": { "const": spec.name() } }, "required": ["uses"] },
            "then": { "properties": { "with": with } }
        }));
    }
    // Definitions created for the `with` types join the root's.
    let defs = generator.take_definitions(true);
    if let Some(obj) = root.as_object_mut() {
        let definitions = obj.entry("definitions").or_insert_with(|| json!({}));
        if let Some(map) = definitions.as_object_mut() {
            for (k, v) in defs {
                map.entry(k).or_insert(v);
            }
            if let Some(stage) = map.get_mut("StageFile").and_then(Value::as_object_mut) {
                stage.insert(String::from("allOf"), Value::Array(by_type));
                if let Some(uses) = stage
                    .get_mut("properties")
                    .and_then(|p| p.get_mut("uses"))
                    .and_then(Value::as_object_mut)
                {
                    uses.insert(String::from("enum"), json!(names));
                }
            }
        }
        obj.insert(
            String::from("$id"),
            json!("https://example.invalid/uplift/pipeline.schema.json"),
        );
    }
    root
}

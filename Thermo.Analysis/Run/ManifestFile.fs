namespace Thermo.Analysis.Run

open System.IO
open System.Text.Json
open Thermo.Analysis

/// The run's manifest as the analysis sees it: run.json declares the snapshots a run must have
/// (`SnapshotSeries`), and an empty or corrupt run.json means the directory is damaged (an interrupted
/// copy, a truncated download) and is said so rather than passed over. Only an analysis asked to do
/// without it (`SnapshotSpacing.InferredFromFiles`) reads the snapshots alone.
module ManifestFile =
    /// Raises `ArtifactException` naming RUN/run.json when it exists but is empty, not JSON, or not a
    /// JSON object with a "config"; does nothing when it is absent or sound.
    [<CompiledName("Check")>]
    let check (run: string) : unit =
        let path = RunLayout.manifest run
        if File.Exists path then
            let text = File.ReadAllText path
            if System.String.IsNullOrWhiteSpace text then Errors.artifactAt path "is empty (the run directory is damaged)"
            try
                use document = JsonDocument.Parse text
                let root = document.RootElement
                if root.ValueKind <> JsonValueKind.Object then Errors.artifactAt path "holds JSON %s, not a run manifest object" (root.ValueKind.ToString().ToLowerInvariant())
                match root.TryGetProperty "config" with
                | true, config when config.ValueKind = JsonValueKind.Object -> ()
                | _ -> Errors.artifactAt path "has no \"config\" object; not a Thermo run manifest"
            with :? JsonException as e -> Errors.artifactAt path "is not valid JSON (%s)" e.Message

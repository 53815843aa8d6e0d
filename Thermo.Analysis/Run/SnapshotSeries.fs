namespace Thermo.Analysis.Run

open System
open System.IO
open System.Text.Json
open Thermo.Analysis
open Thermo.Analysis.Format

/// Where the spacing of a run's snapshots comes from.
type SnapshotSpacing =
    /// From run.json: the snapshots the run must have follow from its snapshot interval, step
    /// snapshots and last complete epoch; a missing one is an error, and files beyond the last
    /// complete epoch (a training still writing) are not read.
    | FromManifest = 0
    /// From the files alone, without reading run.json: whatever snapshots are there, their spacing
    /// inferred from their epochs. Outputs say so.
    | InferredFromFiles = 1

/// One snapshot file of a run and its time: the epoch of a per-epoch file, the global optimiser step
/// of a per-step one.
type SnapshotFile =
    { Time: int
      Path: string }

/// The snapshot series of a run directory: the per-epoch and per-step snapshot files there are, and
/// those its manifest declares must be there, checked against what is.
module SnapshotSeries =
    /// What run.json declares about the snapshots.
    type Plan =
        { /// A per-epoch snapshot every this many epochs (epoch 0 and the configured last epoch always).
          SnapshotEvery: int
          /// The configured number of epochs.
          Epochs: int
          /// Per-step snapshots inside the last this many epochs of the configuration.
          StepSnapshotEpochs: int
          /// The last epoch whose snapshot, tables and checkpoint are complete.
          LastCompleteEpoch: int
          /// The optimiser step count at the end of `LastCompleteEpoch`.
          LastStep: int64 }

    let private failAt path fmt = Errors.artifactAt path fmt

    /// The plan run.json declares; None when the run has no run.json. Raises `ArtifactException` for
    /// a run.json that is damaged or lacks a field the plan needs.
    [<CompiledName("ReadPlan")>]
    let readPlan (run: string) : Plan option =
        let path = RunLayout.manifest run
        if not (File.Exists path) then None
        else
            ManifestFile.check run
            use document = JsonDocument.Parse(File.ReadAllText path)
            let root = document.RootElement
            let config = root.GetProperty "config"
            let number (element: JsonElement) (name: string) (fallback: int64 option) =
                match element.TryGetProperty name with
                | true, v when v.ValueKind = JsonValueKind.Number -> v.GetInt64()
                | _ ->
                    match fallback with
                    | Some v -> v
                    | None -> failAt path "has no number \"%s\"; cannot tell which snapshots the run must have" name
            Some
                { SnapshotEvery = int (number config "snapshotEvery" (Some 1L))
                  Epochs = int (number config "epochs" None)
                  StepSnapshotEpochs = int (number config "stepSnapshotEpochs" (Some 0L))
                  LastCompleteEpoch = int (number root "lastCompleteEpoch" None)
                  LastStep = number root "lastStep" (Some 0L) }

    /// The per-epoch snapshots a run with this plan must have: 0, every `SnapshotEvery`-th epoch and
    /// the configured last one, up to the last complete epoch.
    [<CompiledName("ExpectedEpochs")>]
    let expectedEpochs (plan: Plan) : int[] =
        [| 0 .. plan.LastCompleteEpoch |]
        |> Array.filter (fun e -> e = 0 || e = plan.Epochs || e % max 1 plan.SnapshotEvery = 0)

    /// The per-step snapshots (global optimiser steps) a run with this plan must have: every step of
    /// the complete epochs among the configuration's last `StepSnapshotEpochs`. Every epoch of a run
    /// takes the same number of steps, LastStep / LastCompleteEpoch.
    [<CompiledName("ExpectedSteps")>]
    let expectedSteps (plan: Plan) : int64[] =
        if plan.StepSnapshotEpochs <= 0 || plan.LastCompleteEpoch <= 0 then [||]
        else
            let perEpoch = plan.LastStep / int64 plan.LastCompleteEpoch
            let firstEpoch = max 1 (plan.Epochs - plan.StepSnapshotEpochs + 1)
            [| for e in firstEpoch .. plan.LastCompleteEpoch do
                   for s in int64 (e - 1) * perEpoch + 1L .. int64 e * perEpoch -> s |]

    // The snapshot directories, or the fault of a run without them: named before anything else is
    // read, so a run that never had snapshots of a kind is told so whether or not it has a run.json.
    let private requireEpochDirectory (runDirectory: string) =
        let dir = RunLayout.snapshots runDirectory
        if not (Directory.Exists dir) then failAt runDirectory "no snapshots directory"
        dir

    let private requireStepDirectory (runDirectory: string) =
        let dir = RunLayout.stepSnapshots runDirectory
        if not (Directory.Exists dir) then
            raise (NotWrittenException(runDirectory, sprintf "no per-step snapshots (%s)" dir, "StepSnapshotEpochs"))
        dir

    /// The snapshot files of a directory whose names `timeOf` reads, sorted by their time.
    let private filesIn (timeOf: string -> int option) (dir: string) =
        Directory.EnumerateFiles dir
        |> Seq.choose (fun path -> timeOf (Path.GetFileName path) |> Option.map (fun time -> { Time = time; Path = path }))
        |> Seq.sortBy (fun f -> f.Time)
        |> Seq.toArray

    let private epochFilesIn = filesIn SnapshotSchema.tryEpochOfFileName
    let private stepFilesIn = filesIn (SnapshotSchema.tryStepOfFileName >> Option.map (fun (_, step) -> int step))

    /// Every per-epoch snapshot file of a run directory (its time the epoch), sorted by epoch, whatever
    /// run.json declares. Temporary files of an interrupted write are ignored; both formats may appear.
    [<CompiledName("ListEpochFiles")>]
    let listEpochFiles (runDirectory: string) : SnapshotFile[] =
        epochFilesIn (requireEpochDirectory runDirectory)

    /// Every per-step snapshot file of a run directory (snapshots/steps/epoch=E-step=S.*; its time the
    /// global optimiser step), sorted by step, whatever run.json declares.
    [<CompiledName("ListStepFiles")>]
    let listStepFiles (runDirectory: string) : SnapshotFile[] =
        stepFilesIn (requireStepDirectory runDirectory)

    /// Streams the per-epoch snapshots of a run directory (`listEpochFiles`) in epoch order, reading
    /// each file only when it is reached, so memory holds one snapshot at a time.
    [<CompiledName("ReadRun")>]
    let readRun (runDirectory: string) : seq<Snapshot> =
        let files = listEpochFiles runDirectory
        seq { for file in files -> SnapshotReader.readFile file.Path }

    let private missingText (missing: 'a[]) =
        let shown = missing |> Array.truncate 20 |> Array.map string
        String.Join(", ", shown) + (if missing.Length > 20 then sprintf ", … (%d in all)" missing.Length else "")

    let private declared (run: string) =
        match readPlan run with
        | Some plan -> plan
        | None ->
            failAt run "no %s, so the snapshots the run must have are unknown; analyse it without its manifest to infer the spacing from the files" RunLayout.ManifestFile

    /// The per-epoch snapshot files to read, sorted by epoch. From the manifest: the
    /// ones it declares, after checking that none is missing (an `ArtifactException` naming the missing
    /// epochs otherwise); files it does not declare — beyond the last complete epoch (a training still
    /// writing), or the old last epoch of a run later extended off its snapshot grid — are not read.
    /// Inferred: every file there.
    [<CompiledName("EpochFiles")>]
    let epochFiles (run: string) (spacing: SnapshotSpacing) : SnapshotFile[] =
        if spacing = SnapshotSpacing.InferredFromFiles then listEpochFiles run
        else
            // The manifest before the listing: a training writes an epoch's snapshot before the
            // manifest that declares it, so every file the manifest declares is then listed. Listed
            // first, a file finished between the two reads would be declared but not listed.
            let dir = requireEpochDirectory run
            let plan = declared run
            let files = epochFilesIn dir
            let expected = expectedEpochs plan
            let declared = Set.ofArray expected
            let complete = files |> Array.filter (fun f -> declared.Contains f.Time)
            let present = complete |> Array.map (fun f -> f.Time) |> Set.ofArray
            let missing = expected |> Array.filter (fun e -> not (present.Contains e))
            if missing.Length > 0 then
                failAt run "%s lacks the snapshots of epochs %s (%s declares one every %d epoch%s through epoch %d)"
                    (RunLayout.snapshots run) (missingText missing) RunLayout.ManifestFile plan.SnapshotEvery
                    (if plan.SnapshotEvery = 1 then "" else "s") plan.LastCompleteEpoch
            complete

    /// The per-step snapshot files to read, sorted by global step; checked as
    /// `epochFiles` checks the per-epoch ones.
    [<CompiledName("StepFiles")>]
    let stepFiles (run: string) (spacing: SnapshotSpacing) : SnapshotFile[] =
        if spacing = SnapshotSpacing.InferredFromFiles then listStepFiles run
        else
            // The manifest first, as in `epochFiles`.
            let dir = requireStepDirectory run
            let plan = declared run
            let files = stepFilesIn dir
            let complete = files |> Array.filter (fun f -> int64 f.Time <= plan.LastStep)
            let present = complete |> Array.map (fun f -> int64 f.Time) |> Set.ofArray
            let missing = expectedSteps plan |> Array.filter (fun s -> not (present.Contains s))
            if missing.Length > 0 then
                failAt run "%s lacks the per-step snapshots of steps %s (%s declares every step of the last %d epochs)"
                    (RunLayout.stepSnapshots run) (missingText missing) RunLayout.ManifestFile plan.StepSnapshotEpochs
            complete

    /// The words outputs add when the spacing was inferred rather than declared.
    [<Literal>]
    let InferredNote = "spacing inferred from the files, run.json not read"

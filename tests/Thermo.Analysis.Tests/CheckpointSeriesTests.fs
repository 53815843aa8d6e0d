module Thermo.Analysis.Tests.CheckpointSeriesTests

open System
open System.IO
open Expecto
open Thermo.Analysis.Physics
open Thermo.Analysis.Checkpoints
open Thermo.Analysis.Tests.Generators

/// Creates empty files (and their folders): discovery reads names, never weights.
let private touch (dir: TempDirectory) (names: string list) =
    for name in names do
        let path = dir.File name
        Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
        File.WriteAllText(path, "")

let private write (dir: TempDirectory) (name: string) (text: string) =
    let path = dir.File name
    Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
    File.WriteAllText(path, text)

let private times (plan: CheckpointSeriesPlan) = plan.Entries |> Array.map (fun e -> e.Time)
let private names (plan: CheckpointSeriesPlan) = plan.Entries |> Array.map (fun e -> Path.GetFileName e.Checkpoint)

/// Equality that takes NaN as equal to NaN.
let private sameFloats (actual: float[]) (expected: float[]) (what: string) =
    Expect.equal actual.Length expected.Length (what + ": count")
    for i in 0 .. actual.Length - 1 do
        if not (Double.IsNaN actual[i] && Double.IsNaN expected[i]) then
            Expect.floatClose Accuracy.veryHigh actual[i] expected[i] (sprintf "%s[%d]" what i)

let private trainerState (step: int) (epoch: float) (saveSteps: int option) (history: string) =
    let save = match saveSteps with Some s -> sprintf "\"save_steps\": %d, " s | None -> ""
    sprintf """{"best_metric": null, "epoch": %g, "global_step": %d, %s"log_history": [%s], "max_steps": 1500}""" epoch step save history

[<Tests>]
let tests =
    testList "checkpoint series" [
        testCase "Lightning checkpoints are placed by their global step; last.ckpt is noted and left out; the newest CSVLogger metrics merge by step" <| fun () ->
            use dir = new TempDirectory()
            touch dir [ "epoch=0-step=100.ckpt"; "epoch=2-step=300.ckpt"; "epoch=1-step=200.ckpt"; "last.ckpt"; "hparams.yaml" ]
            write dir "lightning_logs/version_0/metrics.csv" "epoch,step,train_loss\n0,1,9.0\n"
            write dir "lightning_logs/version_1/metrics.csv"
                "epoch,step,train_loss,lr-SGD,val_loss,val_acc\n0,49,0.9,0.1,,\n0,99,0.8,0.1,,\n0,99,,,0.7,0.6\n1,199,0.5,0.05,,\n1,199,,,0.4,0.8\n"
            let plan = CheckpointSeries.discover [| dir.Path |]
            Expect.equal plan.Layout SeriesLayout.Lightning "layout"
            Expect.equal plan.TimeUnit TimeUnit.Step "steps"
            Expect.sequenceEqual (times plan) [| 100; 200; 300 |] "sorted by step"
            Expect.sequenceEqual (plan.Entries |> Array.map (fun e -> e.Epoch)) [| Some 0.0; Some 1.0; Some 2.0 |] "epochs"
            Expect.sequenceEqual (plan.Entries |> Array.map (fun e -> e.Step)) [| Some 100L; Some 200L; Some 300L |] "steps"
            Expect.equal plan.Entries[0].Checkpoint (dir.File "epoch=0-step=100.ckpt") "the file"
            Expect.equal plan.DeclaredInterval (Some 100) "constant spacing"
            Expect.exists plan.Notes (fun n -> n.Contains "last.ckpt") "last.ckpt is noted"
            let metrics = Expect.wantSome plan.Metrics "metrics"
            Expect.sequenceEqual metrics.Time [| 49; 99; 199 |] "one row per step, from the newest version"
            sameFloats metrics.Loss [| 0.9; 0.8; 0.5 |] "loss"
            sameFloats metrics.EvalLoss [| nan; 0.7; 0.4 |] "eval loss merged into the step's row"
            sameFloats metrics.LearningRate [| 0.1; 0.1; 0.05 |] "lr-SGD"
            sameFloats metrics.EvalAccuracy [| nan; 0.6; 0.8 |] "val_acc"

        testCase "epoch-named files make an epoch series; metrics.csv beside them is read by epoch; uneven spacing declares no interval" <| fun () ->
            use dir = new TempDirectory()
            touch dir [ "model_epoch_010.pt"; "model_epoch_001.pt"; "model_epoch_002.pt"; "notes.txt" ]
            write dir "metrics.csv" "epoch,loss,eval_loss,learning_rate,eval_accuracy\n1,2.0,2.5,0.1,0.3\n2,1.0,1.5,0.1,0.5\n2,3.0,,,\n"
            let plan = CheckpointSeries.discover [| dir.Path |]
            Expect.equal plan.Layout SeriesLayout.Files "layout"
            Expect.equal plan.TimeUnit TimeUnit.Epoch "epochs"
            Expect.sequenceEqual (times plan) [| 1; 2; 10 |] "by epoch"
            Expect.equal plan.Entries[0].Step None "no step"
            Expect.equal plan.Entries[0].Epoch (Some 1.0) "epoch"
            Expect.isNone plan.DeclaredInterval "1, 2, 10 is uneven"
            let metrics = Expect.wantSome plan.Metrics "metrics"
            Expect.sequenceEqual metrics.Time [| 1; 2 |] "by epoch"
            sameFloats metrics.Loss [| 2.0; 2.0 |] "two losses of epoch 2 average"
            sameFloats metrics.EvalAccuracy [| 0.3; 0.5 |] "accuracy"

        testCase "every name pattern places its checkpoint" <| fun () ->
            let place (files: string list) =
                use dir = new TempDirectory()
                touch dir files
                let plan = CheckpointSeries.discover [| dir.Path |]
                plan.TimeUnit, times plan
            Expect.equal (place [ "step_500.pt"; "step-1000.pt"; "STEP_1500.PT" ]) (TimeUnit.Step, [| 500; 1000; 1500 |]) "step_N, step-N, any case"
            Expect.equal (place [ "epoch=3.pt"; "epoch_4.pth"; "Epoch-5.safetensors" ]) (TimeUnit.Epoch, [| 3; 4; 5 |]) "epoch=N, epoch_N"
            Expect.equal (place [ "ckpt-0003.pt"; "ckpt-0001.pt"; "ckpt-0002.bin" ]) (TimeUnit.Epoch, [| 1; 2; 3 |]) "a bare trailing number reads as the epoch"
            Expect.equal (place [ "epoch=1-step=10-val_loss=0.52.ckpt"; "epoch=2-step=20-val_loss=0.41.ckpt" ]) (TimeUnit.Step, [| 10; 20 |]) "Lightning names with a metric"
            Expect.equal (place [ "global_step100.pt"; "global_step200.pt" ]) (TimeUnit.Step, [| 100; 200 |]) "global_stepN"
            Expect.equal (place [ "resnet_epoch3_seed1_final.pt"; "resnet_epoch4_seed1_final.pt" ]) (TimeUnit.Epoch, [| 3; 4 |]) "the epoch among other numbers"
            Expect.equal (place [ "epoch=0-step=99.ckpt"; "epoch=1.ckpt" ]) (TimeUnit.Epoch, [| 0; 1 |]) "not every name has a step: epochs"

        testCase "files given one by one (a glob) form a series; other inputs are noted" <| fun () ->
            use dir = new TempDirectory()
            touch dir [ "step_200.safetensors"; "step_100.safetensors"; "step_300.safetensors"; "config.json" ]
            write dir "metrics.csv" "step,loss\n100,1.0\n200,0.5\n"
            let plan = CheckpointSeries.discover [| dir.File "step_300.safetensors"; dir.File "step_100.safetensors"; dir.File "config.json"; dir.File "step_200.safetensors" |]
            Expect.sequenceEqual (names plan) [| "step_100.safetensors"; "step_200.safetensors"; "step_300.safetensors" |] "sorted"
            Expect.equal plan.Entries[0].Source (dir.File "step_100.safetensors") "the source as given"
            Expect.exists plan.Notes (fun n -> n.Contains "config.json") "the json is noted"
            Expect.equal plan.DeclaredInterval (Some 100) "interval"
            let metrics = Expect.wantSome plan.Metrics "metrics beside the files"
            Expect.sequenceEqual metrics.Time [| 100; 200 |] "by step"
            let single = CheckpointSeries.discover [| dir.File "step_100.safetensors" |]
            Expect.sequenceEqual (times single) [| 100 |] "one file is a series of one"

        testCase "Hugging Face checkpoint-N directories: global step, fractional epoch, weights by preference, save_steps, the last log_history" <| fun () ->
            use dir = new TempDirectory()
            touch dir [ "checkpoint-500/model.safetensors"; "checkpoint-500/optimizer.pt"; "checkpoint-500/training_args.bin"
                        "checkpoint-1000/model.safetensors.index.json"; "checkpoint-1000/model-00001-of-00002.safetensors"; "checkpoint-1000/pytorch_model.bin"
                        "checkpoint-1500/pytorch_model.bin"; "model.safetensors"; "training_args.bin"; "config.json" ]
            write dir "checkpoint-500/trainer_state.json" (trainerState 500 0.5 (Some 500) """{"step": 500, "loss": 9.0}""")
            write dir "checkpoint-1000/trainer_state.json" (trainerState 1000 1.0 (Some 500) "")
            write dir "checkpoint-1500/trainer_state.json"
                (trainerState 1500 1.5 (Some 500)
                    """{"epoch": 0.5, "grad_norm": 1.2, "learning_rate": 4e-05, "loss": 2.5, "step": 500},
                       {"epoch": 0.5, "eval_loss": 2.25, "eval_accuracy": 0.5, "eval_runtime": 3.1, "step": 500},
                       {"epoch": 1.0, "learning_rate": 2e-05, "loss": NaN, "step": 1000},
                       {"epoch": 1.5, "learning_rate": 1e-05, "loss": 1.5, "step": 1500},
                       {"epoch": 1.5, "step": 1500, "total_flos": 1e15, "train_loss": 2.0, "train_runtime": 100.0}""")
            let plan = CheckpointSeries.discover [| dir.Path |]
            Expect.equal plan.Layout SeriesLayout.HuggingFace "layout"
            Expect.equal plan.TimeUnit TimeUnit.Step "steps"
            Expect.sequenceEqual (times plan) [| 500; 1000; 1500 |] "global steps"
            Expect.sequenceEqual (plan.Entries |> Array.map (fun e -> e.Epoch)) [| Some 0.5; Some 1.0; Some 1.5 |] "fractional epochs"
            Expect.sequenceEqual (names plan) [| "model.safetensors"; "model.safetensors.index.json"; "pytorch_model.bin" |] "weights in the Trainer's order of preference"
            Expect.equal plan.Entries[0].Source (dir.File "checkpoint-500") "the directory is the source"
            Expect.equal plan.DeclaredInterval (Some 500) "save_steps"
            Expect.exists plan.Notes (fun n -> n.Contains "training_args.bin") "the Trainer's top-level output is noted"
            let metrics = Expect.wantSome plan.Metrics "log_history"
            Expect.sequenceEqual metrics.Time [| 500; 1000; 1500 |] "one row per step, the summary row adds none"
            sameFloats metrics.Loss [| 2.5; nan; 1.5 |] "Python's NaN reads as absent"
            sameFloats metrics.EvalLoss [| 2.25; nan; nan |] "eval merged"
            sameFloats metrics.LearningRate [| 4e-05; 2e-05; 1e-05 |] "learning rate"
            sameFloats metrics.EvalAccuracy [| 0.5; nan; nan |] "accuracy"

        testCase "Hugging Face: a save_steps the spacing contradicts is not declared; one checkpoint-N directory alone is a series" <| fun () ->
            use dir = new TempDirectory()
            for step in [ 469; 938; 1407 ] do
                touch dir [ sprintf "checkpoint-%d/model.safetensors" step ]
                write dir (sprintf "checkpoint-%d/trainer_state.json" step) (trainerState step (float step / 469.0) (Some 500) "")
            let plan = CheckpointSeries.discover [| dir.Path |]
            Expect.equal plan.DeclaredInterval (Some 469) "the spacing, not save_steps"
            Expect.exists plan.Notes (fun n -> n.Contains "save_steps 500") "the contradiction is noted"
            Expect.isNone plan.Metrics "no log history"
            let one = CheckpointSeries.discover [| dir.File "checkpoint-938" |]
            Expect.sequenceEqual (times one) [| 938 |] "one directory"
            let two = CheckpointSeries.discover [| dir.File "checkpoint-1407"; dir.File "checkpoint-469" |]
            Expect.sequenceEqual (times two) [| 469; 1407 |] "directories given one by one"

        testCase "each fault fails naming the path" <| fun () ->
            use dir = new TempDirectory()
            expectArtifactError "does not exist" (fun () -> CheckpointSeries.discover [| dir.File "nowhere" |])
            expectArtifactError (dir.File "nowhere") (fun () -> CheckpointSeries.discover [| dir.File "nowhere" |])
            expectArtifactAt (dir.File "nowhere") "does not exist" (fun () -> CheckpointSeries.discover [| dir.File "nowhere" |])
            expectArtifactAt dir.Path "holds no checkpoint files" (fun () -> CheckpointSeries.discover [| dir.Path |])
            expectArtifactError (dir.Path + " holds no checkpoint files (.pt, .pth, .bin, .ckpt, .safetensors) or checkpoint-N directories") (fun () -> CheckpointSeries.discover [| dir.Path |])
            touch dir [ "readme.md"; "runs/events.out" ]
            expectArtifactError "holds no checkpoint files" (fun () -> CheckpointSeries.discover [| dir.Path |])
            touch dir [ "epoch_1.pt"; "model.pt" ]
            expectArtifactError "model.pt: its name carries no number" (fun () -> CheckpointSeries.discover [| dir.Path |])
            File.Delete(dir.File "model.pt")
            touch dir [ "epoch-1.pth" ]
            expectArtifactError "epoch-1.pth" (fun () -> CheckpointSeries.discover [| dir.Path |])
            expectArtifactError "epoch_1.pt" (fun () -> CheckpointSeries.discover [| dir.Path |])
            File.Delete(dir.File "epoch-1.pth")
            touch dir [ "step_100.pt" ]
            expectArtifactError "cannot be placed on one time axis" (fun () -> CheckpointSeries.discover [| dir.Path |])
            use hf = new TempDirectory()
            touch hf [ "checkpoint-10/model.safetensors"; "checkpoint-20/notes.txt" ]
            write hf "checkpoint-10/trainer_state.json" "{ not json"
            expectArtifactError (Path.Combine(hf.Path, "checkpoint-10", "trainer_state.json") + ": not JSON") (fun () -> CheckpointSeries.discover [| hf.Path |])
            write hf "checkpoint-10/trainer_state.json" (trainerState 10 1.0 None "")
            expectArtifactError (hf.File "checkpoint-20" + " holds no model weights") (fun () -> CheckpointSeries.discover [| hf.Path |])
            expectArtifactAt (hf.File "checkpoint-20") "holds no model weights" (fun () -> CheckpointSeries.discover [| hf.Path |])
            touch hf [ "checkpoint-20/pytorch_model.bin"; "step_30.pt" ]
            expectArtifactError "mixes checkpoint-N directories and checkpoint files (" (fun () -> CheckpointSeries.discover [| hf.Path |])
            expectArtifactAt hf.Path "mixes checkpoint-N directories" (fun () -> CheckpointSeries.discover [| hf.Path |])
            File.Delete(hf.File "step_30.pt")
            write hf "checkpoint-20/trainer_state.json" (trainerState 10 2.0 None "")
            expectArtifactError "checkpoint-20" (fun () -> CheckpointSeries.discover [| hf.Path |])
            use lastOnly = new TempDirectory()
            touch lastOnly [ "last.ckpt" ]
            expectArtifactError "last.ckpt" (fun () -> CheckpointSeries.discover [| lastOnly.Path |])
            expectArtifactError "none of" (fun () -> CheckpointSeries.discover [| dir.File "readme.md" |])
    ]

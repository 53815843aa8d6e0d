namespace Thermo.Analysis.Run

open Thermo.Analysis.Format

/// One row of metrics.parquet: what the trainer measured over one epoch. (Qualified field labels, so
/// that `{ Epoch = …; Step = … }` elsewhere still means a `Snapshot`.)
[<RequireQualifiedAccess>]
type MetricsRow =
    { Epoch: int
      /// Global optimiser step at the end of the epoch.
      Step: int64
      TrainLoss: float
      TrainAccuracy: float
      TestLoss: float
      TestAccuracy: float
      /// Learning rate of the epoch.
      Lr: float
      BatchSize: int
      TrainSeconds: float
      EvalSeconds: float
      SnapshotSeconds: float
      ImagesPerSecond: float }

/// The test curves the `auto` window rule reads from the metrics: epoch, test loss, test accuracy.
[<RequireQualifiedAccess>]
type TestCurves = { Epochs: int[]; TestLoss: float[]; TestAccuracy: float[] }

/// RUN/metrics.parquet: one row per epoch, written by the trainer after each epoch. The columns, their
/// order and types and the table name are those the trainer has always written, so files written here
/// and by older trainers are the same bytes.
module MetricsTable =
    /// Table name stored in the file's metadata.
    [<Literal>]
    let Name = "metrics"

    /// Writes `rows` to `path` atomically.
    [<CompiledName("Write")>]
    let write (path: string) (rows: MetricsRow[]) =
        Tables.write path Name
            [ Int32Column("epoch", rows |> Array.map (fun r -> r.Epoch))
              Int64Column("step", rows |> Array.map (fun r -> r.Step))
              Float64Column("train_loss", rows |> Array.map (fun r -> r.TrainLoss))
              Float64Column("train_accuracy", rows |> Array.map (fun r -> r.TrainAccuracy))
              Float64Column("test_loss", rows |> Array.map (fun r -> r.TestLoss))
              Float64Column("test_accuracy", rows |> Array.map (fun r -> r.TestAccuracy))
              Float64Column("lr", rows |> Array.map (fun r -> r.Lr))
              Int32Column("batch_size", rows |> Array.map (fun r -> r.BatchSize))
              Float64Column("train_seconds", rows |> Array.map (fun r -> r.TrainSeconds))
              Float64Column("eval_seconds", rows |> Array.map (fun r -> r.EvalSeconds))
              Float64Column("snapshot_seconds", rows |> Array.map (fun r -> r.SnapshotSeconds))
              Float64Column("images_per_second", rows |> Array.map (fun r -> r.ImagesPerSecond)) ]

    /// Reads every row of a metrics table; `ArtifactException` naming the file for a missing or mistyped column.
    [<CompiledName("Read")>]
    let read (path: string) : MetricsRow[] =
        let c = Tables.readByName path Name
        let ints = Tables.int32s path c
        let floats = Tables.float64s path c
        let epoch, step = ints "epoch", Tables.int64s path c "step"
        let trainLoss, trainAccuracy, testLoss, testAccuracy = floats "train_loss", floats "train_accuracy", floats "test_loss", floats "test_accuracy"
        let lr, batchSize = floats "lr", ints "batch_size"
        let trainSeconds, evalSeconds, snapshotSeconds, imagesPerSecond = floats "train_seconds", floats "eval_seconds", floats "snapshot_seconds", floats "images_per_second"
        Array.init epoch.Length (fun i ->
            { MetricsRow.Epoch = epoch[i]; Step = step[i]; TrainLoss = trainLoss[i]; TrainAccuracy = trainAccuracy[i]
              TestLoss = testLoss[i]; TestAccuracy = testAccuracy[i]; Lr = lr[i]; BatchSize = batchSize[i]
              TrainSeconds = trainSeconds[i]; EvalSeconds = evalSeconds[i]; SnapshotSeconds = snapshotSeconds[i]
              ImagesPerSecond = imagesPerSecond[i] })

    /// Only the columns the `auto` window needs (epoch, test loss, test accuracy), so a metrics table
    /// with other columns missing still serves it.
    [<CompiledName("ReadTestCurves")>]
    let readTestCurves (path: string) : TestCurves =
        let c = Tables.readByName path Name
        { TestCurves.Epochs = Tables.int32s path c "epoch"; TestLoss = Tables.float64s path c "test_loss"; TestAccuracy = Tables.float64s path c "test_accuracy" }

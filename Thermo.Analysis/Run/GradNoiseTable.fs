namespace Thermo.Analysis.Run

open Thermo.Analysis.Format

/// One row of gradnoise.parquet: THEORY.md's s_I(b) = mean |∂L/∂ω| over layer I's weights, summarised over
/// an epoch's minibatches.
[<RequireQualifiedAccess>]
type GradientNoiseRow =
    { Epoch: int
      Layer: string
      /// Mean of s_I over the epoch's minibatches.
      Mean: float
      /// Standard deviation of s_I over the epoch's minibatches.
      Std: float
      /// Minibatches summarised.
      Batches: int }

/// RUN/gradnoise.parquet: one row per epoch and layer, written by the trainer. Columns, order, types and
/// table name are those the trainer has always written.
module GradNoiseTable =
    /// Table name stored in the file's metadata.
    [<Literal>]
    let Name = "gradnoise"

    /// Writes `rows` to `path` atomically.
    [<CompiledName("Write")>]
    let write (path: string) (rows: GradientNoiseRow[]) =
        Tables.write path Name
            [ Int32Column("epoch", rows |> Array.map (fun r -> r.Epoch))
              StringColumn("layer", rows |> Array.map (fun r -> r.Layer))
              Float64Column("mean", rows |> Array.map (fun r -> r.Mean))
              Float64Column("std", rows |> Array.map (fun r -> r.Std))
              Int32Column("batches", rows |> Array.map (fun r -> r.Batches)) ]

    /// Reads every row of a gradient-noise table.
    [<CompiledName("Read")>]
    let read (path: string) : GradientNoiseRow[] =
        let c = Tables.readByName path Name
        let epoch, layer, mean = Tables.int32s path c "epoch", Tables.strings path c "layer", Tables.float64s path c "mean"
        let std, batches = Tables.float64s path c "std", Tables.int32s path c "batches"
        Array.init epoch.Length (fun i -> { GradientNoiseRow.Epoch = epoch[i]; Layer = layer[i]; Mean = mean[i]; Std = std[i]; Batches = batches[i] })

    /// Only (epoch, layer, mean) of each row: what the analysis of the noise's decay needs.
    [<CompiledName("ReadMeans")>]
    let readMeans (path: string) : (int * string * float)[] =
        let c = Tables.readByName path Name
        let epoch, layer, mean = Tables.int32s path c "epoch", Tables.strings path c "layer", Tables.float64s path c "mean"
        Array.init epoch.Length (fun i -> epoch[i], layer[i], mean[i])

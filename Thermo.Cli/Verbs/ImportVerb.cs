using System.CommandLine;
using Thermo.Analysis;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo import CHECKPOINTS... --out RUN</c>: a checkpoint series of another trainer (PyTorch,
/// Lightning, Hugging Face) as an ordinary Thermo run directory — tidy Parquet snapshots, the source's
/// metrics, a run.json naming each checkpoint, its time and digest — for SQL engines and
/// <c>thermo analyze</c>/<c>report</c>. Analysing the run gives the tables <c>analyze --out</c> gives in place.
/// </summary>
public static class ImportVerb
{
    public static Command Build()
    {
        var inputs = new Argument<string[]>("checkpoints") { Description = "A directory of checkpoints (PyTorch .pt/.pth/.bin, Lightning .ckpt, Hugging Face checkpoint-N/, safetensors) or the checkpoint files", Arity = ArgumentArity.OneOrMore };
        var checkpoints = new CheckpointFlags("The run directory to write (replaced whole if it is an earlier import; never inside the checkpoints)");
        checkpoints.Out.Required = true;
        var command = new Command("import", "Turn a checkpoint series of PyTorch, Lightning or Hugging Face into a Thermo run directory")
        {
            inputs, checkpoints.Out, checkpoints.Exclude, checkpoints.UnitsAlongDim1, checkpoints.AcceptGaps,
        };
        command.SetAction(parse =>
        {
            var progress = new ConsoleProgress();
            var sources = parse.GetValue(inputs)!;
            var started = System.Diagnostics.Stopwatch.StartNew();
            int shown = 0;
            var summary = CheckpointRuns.Import(sources, checkpoints.ReadOptions(parse), parse.GetValue(checkpoints.AcceptGaps), parse.GetValue(checkpoints.Out)!, (done, total) =>
            {
                if (done == 0 || done * 10 / total <= shown) return;
                shown = done * 10 / total;
                progress.Message($"  {done}/{total} checkpoints imported; ETA {started.Elapsed / done * (total - done):mm\\:ss}");
            });
            CliOutput.Result(new
            {
                run = summary.Run, snapshots = summary.Snapshots, analysed = summary.Kept,
                dropped = summary.Dropped.Select(d => new { key = d.StoredKey, reason = d.Reason }), notes = summary.Notes,
            }, () =>
            {
                Console.WriteLine($"{summary.Run}: {summary.Snapshots} snapshots imported in {started.Elapsed.TotalSeconds:F1} s");
                Console.WriteLine($"  analysed tensors: {string.Join(", ", summary.Kept)}");
                Console.WriteLine($"  not analysed: {(summary.Dropped.Length == 0 ? "none" : string.Join(", ", summary.Dropped.Select(d => $"{d.StoredKey} ({d.Reason})")))}");
                foreach (var note in summary.Notes) Console.WriteLine($"  note: {note}");
                Console.WriteLine($"  next: thermo analyze {summary.Run} --window last:N (or a:b)");
            });
            return ExitCodes.Ok;
        });
        return command;
    }
}

using System.CommandLine;
using Thermo.Pipeline.Cluster;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo collect</c>: every run under the given directories (runs, sweeps, reproductions, a
/// ledger) as one Hive-partitioned Parquet dataset, <c>OUT/table=NAME/run=ID/part-0.parquet</c>.
/// </summary>
public static class CollectVerb
{
    public static Command Build()
    {
        var paths = new Argument<string[]>("PATH") { Description = "Run directories, or directories holding runs (a sweep, a reproduction, a ledger): searched below", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "The dataset directory (replaced only if it is an earlier collection)", Required = true };
        var command = new Command("collect", "Many runs' tables as one Hive-partitioned dataset (table=NAME/run=ID/part-0.parquet) for DuckDB, Spark or pandas")
        {
            paths, output,
        };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(output)!;
            var progress = new ConsoleProgress();
            var collected = RunCollection.Collect(parse.GetValue(paths)!, dir, progress.Message);
            CliOutput.Result(new
            {
                directory = collected.Directory,
                runs = collected.Runs.Select(r => new { id = r.Id, partition = $"run={RunCollection.PartitionValue(r.Id)}", directory = r.Run }),
                tables = collected.Rows.Select(kv => new { table = kv.Key, rows = kv.Value }),
            }, () =>
            {
                Console.WriteLine($"{collected.Runs.Count} runs collected into {collected.Directory}:");
                foreach (var (table, rows) in collected.Rows) Console.WriteLine($"  table={table,-20} {rows,10:N0} rows");
                Console.WriteLine($"  DuckDB: SELECT * FROM read_parquet('{collected.Directory}/table=temperature/*/*.parquet', hive_partitioning = true)");
            });
            return ExitCodes.Ok;
        });
        return command;
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using Thermo.Analysis;
using Thermo.Analysis.Format;
using Thermo.Analysis.Run;
using Thermo.Trainer;
using Thermo.Trainer.Training;

namespace Thermo.Pipeline.Cluster;

/// <summary>
/// <c>thermo collect</c>: many runs' tables as one Hive-partitioned dataset,
/// <c>OUT/table=NAME/run=ID/part-0.parquet</c>, so that DuckDB's
/// <c>read_parquet('OUT/table=temperature/*/*.parquet', hive_partitioning = true)</c> or Spark's
/// <c>spark.read.parquet("OUT/table=temperature")</c> sees every run's rows with a <c>run</c> column.
/// Tables: every Parquet table a run directory holds (metrics, gradnoise, analysis/ and analysis-steps/,
/// pruning/), named by their kind, and <c>runs</c>: one row per run with its configuration, to join on.
/// Snapshots stay where they are (they are the bulk of a run, and already tidy Parquet).
/// </summary>
public static class RunCollection
{
    /// <summary>The dataset's own record (Hive readers skip names starting with '_'): what was collected from where.</summary>
    public const string ManifestFile = "_collection.json";
    /// <summary>The setting of the dataset's directory (for messages).</summary>
    public const string Out = "Out";
    /// <summary>The table of one row per run.</summary>
    public const string RunsTable = "runs";

    /// <summary>What one call collected: the dataset directory, each run's id and directory, and the rows per table.</summary>
    public sealed record Collected(string Directory, IReadOnlyList<(string Id, string Run)> Runs, IReadOnlyDictionary<string, long> Rows);

    /// <summary>
    /// The run directories under <paramref name="paths"/>: each path that holds a run.json is a run,
    /// and every directory below any path is searched for more (a sweep's grid points, a reproduction's
    /// seeds, a ledger's entries), leaving out snapshots and checkpoints.
    /// </summary>
    public static IReadOnlyList<string> FindRuns(IEnumerable<string> paths)
    {
        var runs = new List<string>();
        void Walk(string dir)
        {
            if (File.Exists(RunLayout.Manifest(dir))) runs.Add(Path.GetFullPath(dir));
            foreach (var sub in Directory.EnumerateDirectories(dir).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(sub);
                if (name.StartsWith('.') || name is RunLayout.SnapshotsDirectory or RunLayout.CheckpointDirectory || name.StartsWith("table=", StringComparison.Ordinal)) continue;
                Walk(sub);
            }
        }
        foreach (var path in paths)
        {
            if (!Directory.Exists(path)) throw new ArtifactException($"{path}: no such directory", path);
            Walk(path);
        }
        var distinct = runs.Distinct().ToList();
        if (distinct.Count == 0) throw new NoRunException(paths.ToArray(), "", below: true);
        return distinct;
    }

    /// <summary>
    /// A run id as a Hive partition value: the characters Hive escapes in partition paths (among them
    /// '/', '=', '%', ':') as %XX, which Spark and DuckDB decode when they read the partition back.
    /// </summary>
    public static string PartitionValue(string id)
    {
        var escaped = new StringBuilder();
        foreach (var c in id)
        {
            if (c < ' ' || c == '\u007f' || "\"#%'*/:=?\\{[]^".Contains(c)) escaped.Append(CultureInfo.InvariantCulture, $"%{(int)c:X2}");
            else escaped.Append(c);
        }
        return escaped.ToString();
    }

    /// <summary>The tables a run directory holds: (table name, file), the per-step analysis apart by file name.</summary>
    static IEnumerable<(string File, string Part)> TableFiles(string run)
    {
        foreach (var file in new[] { RunLayout.Metrics(run), RunLayout.GradNoise(run) }.Where(File.Exists)) yield return (file, "part-0");
        foreach (var (dir, part) in new[] { (RunLayout.AnalysisDirectory, "part-0"), (RunLayout.StepAnalysisDirectory, "part-steps"), (RunLayout.PruningDirectory, "part-0") })
        {
            var path = Path.Combine(run, dir);
            if (!Directory.Exists(path)) continue;
            foreach (var file in Directory.EnumerateFiles(path, "*.parquet").Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal))
                yield return (file, part);
        }
    }

    /// <summary>
    /// Collects every run under <paramref name="paths"/> into <paramref name="output"/>, all or nothing
    /// (built in a temporary directory, then swapped in). An existing <paramref name="output"/> is
    /// replaced only when it is an earlier collection.
    /// </summary>
    public static Collected Collect(IReadOnlyList<string> paths, string output, Action<string> progress)
    {
        var runs = FindRuns(paths);
        if (File.Exists(output)) throw new SettingException(Out, output, "is a file, not a directory");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any() && !File.Exists(Path.Combine(output, ManifestFile)))
            throw new SettingException(Out, output, $"exists and is not a collection (no {ManifestFile}); choose another directory or remove it");
        var full = Path.GetFullPath(output);
        if (runs.Any(r => full.StartsWith(r + Path.DirectorySeparatorChar, StringComparison.Ordinal) || full == r))
            throw new SettingException(Out, output, "lies inside a run it collects; choose a directory outside the runs");
        var ids = RunIdentity.Names([.. runs]);
        var rows = new SortedDictionary<string, long>(StringComparer.Ordinal);
        AtomicFiles.ReplaceDirectory(output, temp =>
        {
            var manifests = new List<(string Id, string Run, RunManifest Manifest)>();
            for (int i = 0; i < runs.Count; i++)
            {
                var run = runs[i];
                var manifest = RunManifest.TryLoad(run) ?? throw new ArtifactException($"{RunLayout.Manifest(run)}: not a readable run manifest", RunLayout.Manifest(run));
                manifests.Add((ids[i], run, manifest));
                foreach (var (file, part) in TableFiles(run))
                {
                    var (kind, columns) = Table.ReadAnyKind(file);
                    // The partition gives the run; a table's own "run" column (its directory when it was written) is kept under another name.
                    var renamed = columns.Select(c => c.Name == "run" ? Rename(c, "run_directory") : c).ToArray();
                    if (columns.Any(c => c.Name == "run") && columns.Any(c => c.Name == "run_directory"))
                        throw new ArtifactException($"{file}: has both a run and a run_directory column", file);
                    var target = Path.Combine(temp, $"table={kind}", $"run={PartitionValue(ids[i])}", part + ".parquet");
                    if (File.Exists(target)) throw new ArtifactException($"{file}: a second {kind} table in {run}", file);
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    Table.Write(target, kind, renamed);
                    rows[kind] = rows.GetValueOrDefault(kind) + (renamed.Length == 0 ? 0 : renamed[0].Length);
                }
                progress($"  {i + 1}/{runs.Count} {ids[i]}");
            }
            foreach (var (id, run, m) in manifests)
            {
                var target = Path.Combine(temp, $"table={RunsTable}", $"run={PartitionValue(id)}", "part-0.parquet");
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                Table.Write(target, RunsTable, RunColumns(run, m));
            }
            rows[RunsTable] = manifests.Count;
            var record = new
            {
                created_utc = DateTimeOffset.UtcNow, schema_version = SnapshotSchema.Version,
                runs = manifests.Select(m => new { id = m.Id, partition = $"run={PartitionValue(m.Id)}", directory = m.Run }),
                rows,
            };
            File.WriteAllText(Path.Combine(temp, ManifestFile), JsonSerializer.Serialize(record, new JsonSerializerOptions { WriteIndented = true }));
        });
        return new Collected(output, ids.Zip(runs).ToList(), rows);
    }

    static Column Rename(Column c, string name) => c switch
    {
        Column.StringColumn s => Column.Strings(name, s.values),
        Column.Int32Column i => Column.Ints(name, i.values),
        Column.Int64Column l => Column.Longs(name, l.values),
        Column.Float32Column f => Column.Floats(name, f.values),
        Column.Float64Column d => Column.Doubles(name, d.values),
        _ => throw new ArgumentException($"unknown column type of {c.Name}"),
    };

    /// <summary>The <c>runs</c> table's one row: where the run is, how far it got, and the configuration a comparison is made over.</summary>
    static Column[] RunColumns(string run, RunManifest m)
    {
        var c = m.Config;
        return
        [
            Column.Strings("directory", [run]),
            Column.Strings("run_id", [m.RunId]),
            Column.Strings("status", [m.Status.ToString().ToLowerInvariant()]),
            Column.Ints("last_complete_epoch", [m.LastCompleteEpoch]),
            Column.Strings("model", [c.Model]),
            Column.Strings("dataset", [c.Dataset]),
            Column.Strings("dataset_digest", [m.Dataset.Digest]),
            Column.Strings("graph", [c.ResolvedGraph ?? ""]),
            Column.Longs("seed", [c.Seed]),
            Column.Ints("epochs", [c.Epochs]),
            Column.Strings("optimizer", [c.Optimizer]),
            Column.Doubles("lr", [c.Lr]),
            Column.Doubles("momentum", [c.Momentum]),
            Column.Ints("batch_size", [c.BatchSize]),
            Column.Doubles("weight_decay", [c.WeightDecay]),
            Column.Doubles("l2", [c.L2]),
            Column.Doubles("dropout", [c.Dropout]),
            Column.Strings("init", [c.Init]),
            Column.Strings("loss", [c.Loss]),
            Column.Ints("threads", [c.Threads]),
            Column.Longs("parameters", [m.ParameterCount]),
        ];
    }
}

using Thermo.Analysis;

namespace Thermo.Pipeline.Pruning;

/// <summary>Typed access to the columns of a table read with <see cref="Tables.Read"/>.</summary>
public static class TableColumns
{
    /// <summary>Reads a table of kind <paramref name="table"/>, its columns by name.</summary>
    public static IReadOnlyDictionary<string, Column> Read(string path, string table) =>
        Tables.Read(path, table).ToDictionary(c => c.Name);

    /// <summary>A column's values as <typeparamref name="T"/> (string, int or double), or a message
    /// naming <paramref name="what"/> (the file) and the column.</summary>
    public static T[] Get<T>(IReadOnlyDictionary<string, Column> table, string name, string what) =>
        !table.TryGetValue(name, out var c) ? throw new ArtifactException($"{what}: no column '{name}'")
        : (c, typeof(T)) switch
        {
            (Column.StringColumn s, var t) when t == typeof(string) => (T[])(object)s.values,
            (Column.Int32Column i, var t) when t == typeof(int) => (T[])(object)i.values,
            (Column.Float64Column d, var t) when t == typeof(double) => (T[])(object)d.values,
            _ => throw new ArtifactException($"{what}: column '{name}' is not of type {typeof(T).Name}"),
        };
}

using DuckDB.NET.Data;

namespace Thermo.Cli.Tests;

/// <summary>DuckDB, in memory: the independent engine the tests read Thermo's Parquet back with.</summary>
public static class DuckDb
{
    /// <summary>Every row of <paramref name="sql"/>, each value as DuckDB returns it (null for SQL NULL).</summary>
    public static List<object?[]> Rows(string sql)
    {
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var rows = new List<object?[]>();
        while (reader.Read())
        {
            var row = new object?[reader.FieldCount];
            for (int i = 0; i < row.Length; i++) row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            rows.Add(row);
        }
        return rows;
    }
}

//! Plain-text tables with aligned columns, as kubectl prints them.

/// `header` and `rows` as lines, each column as wide as its widest cell plus two spaces; the
/// last column is not padded.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_by_characters() {
        let rows = vec![
            vec!["configmaps".to_owned(), "✔".to_owned(), "x".to_owned()],
            vec!["pods".to_owned(), "✖".to_owned(), String::new()],
        ];
        assert_eq!(render(&["NAME", "GET", "WHY"], &rows), "NAME        GET  WHY\nconfigmaps  ✔    x\npods        ✖\n");
    }
}

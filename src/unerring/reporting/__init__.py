"""What a person or a data tool reads from a journal: the HTML report and exports."""

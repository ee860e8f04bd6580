"""File formats: BIOM, QIIME 2 archives, FASTA, Newick, metadata TSV, Parquet caches."""

pub mod ketama;
